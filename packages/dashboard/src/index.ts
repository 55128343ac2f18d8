export { createDashboard, type DashboardOptions } from './dashboard.js'
export { escapeHtml, html, SafeHtml } from './html.js'
