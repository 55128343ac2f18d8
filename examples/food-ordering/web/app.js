// The order page: pick dishes, place the order, then poll its status (as the order service's API says) until it
// is ready or cancelled. Everything from the server is shown as text, never as markup.
const customerId =
  localStorage.getItem('customerId') ??
  (() => {
    const id = `c_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
    localStorage.setItem('customerId', id)
    return id
  })()
const $ = (id) => document.getElementById(id)
const euros = (cents) => `€${(cents / 100).toFixed(2)}`
const finished = new Set(['ready', 'cancelled', 'rejected'])

async function showMenu() {
  const response = await fetch('/menu')
  const body = await response.json()
  if (!response.ok) {
    $('error').textContent = body.error
    return
  }
  for (const dish of body.items) {
    const row = document.createElement('tr')
    for (const text of [dish.name, euros(dish.priceCents), String(dish.available)]) {
      const cell = document.createElement('td')
      cell.textContent = text
      row.append(cell)
    }
    const cell = document.createElement('td')
    const input = document.createElement('input')
    Object.assign(input, { type: 'number', min: '0', max: '50', value: '0', name: dish.id })
    input.dataset.price = String(dish.priceCents)
    input.addEventListener('input', showTotal)
    cell.append(input)
    row.append(cell)
    $('menu').append(row)
  }
}

function chosen() {
  return [...document.querySelectorAll('#menu input')]
    .map((input) => ({ id: input.name, quantity: Number(input.value), price: Number(input.dataset.price) }))
    .filter((line) => line.quantity > 0)
}

function showTotal() {
  const total = chosen().reduce((sum, line) => sum + line.quantity * line.price, 0)
  $('total').textContent = total > 0 ? euros(total) : ''
}

async function place() {
  $('error').textContent = ''
  const items = chosen().map(({ id, quantity }) => ({ id, quantity }))
  if (items.length === 0) {
    $('error').textContent = 'Pick at least one dish.'
    return
  }
  const response = await fetch(`/customer/${customerId}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ items }),
  })
  const body = await response.json()
  if (body.order === undefined && !response.ok) {
    $('error').textContent = body.error
    return
  }
  const order = body.order ?? body
  history.replaceState(null, '', `/?order=${encodeURIComponent(order.id)}`)
  void watch(order.id)
}

function show(order) {
  $('menu-section').hidden = true
  $('order-section').hidden = false
  $('order-id').textContent = order.id
  $('status').textContent = order.status.replace('_', ' ')
  $('status').dataset.status = order.status
  $('reason').textContent = order.reason === undefined ? '' : `(${order.reason})`
  const payable = order.status === 'awaiting_payment' && order.paymentLink !== undefined
  $('pay-line').hidden = !payable
  if (payable) $('pay').href = order.paymentLink
}

async function watch(orderId) {
  for (;;) {
    const response = await fetch(`/customer/${customerId}/orders/${encodeURIComponent(orderId)}`)
    if (response.ok) {
      const order = await response.json()
      show(order)
      if (finished.has(order.status)) return
    } else {
      $('error').textContent = (await response.json()).error
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

$('place').addEventListener('click', () => void place())
const resumed = new URLSearchParams(location.search).get('order')
if (resumed === null) void showMenu()
else void watch(resumed)
