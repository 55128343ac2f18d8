export { alignedChart, type ChartData, createMetricsSampler, type MetricsSource, type Series } from './charts.js'
export { createDashboard, type DashboardOptions } from './dashboard.js'
export { escapeHtml, html, SafeHtml } from './html.js'
export type { NotificationSource, NotificationView } from './notifications.js'
