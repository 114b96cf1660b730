// Lists the items the backend stores and adds new ones; the status line tells whether the
// API answers. Plain browser JavaScript, no build step.
'use strict'

const REFRESH_MS = 15000
const TIMEOUT_MS = 10000

async function request(path, options) {
  const init = { headers: { Accept: 'application/json' }, signal: AbortSignal.timeout(TIMEOUT_MS) }
  if (options && options.body !== undefined) {
    init.method = 'POST'
    init.headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(options.body)
  }
  let res
  try {
    res = await fetch(path, init)
  } catch (err) {
    throw new Error('cannot reach the API: ' + err.message)
  }
  const text = await res.text()
  let data = null
  try {
    data = text ? JSON.parse(text) : null
  } catch {
    data = null
  }
  if (!res.ok) {
    const detail = data && typeof data.error === 'string' ? data.error : res.statusText
    throw new Error((res.status + ' ' + detail).trim())
  }
  return data
}

const statusEl = document.getElementById('api-status')
const listEl = document.getElementById('items')
const emptyEl = document.getElementById('empty')
const form = document.getElementById('add')
const input = document.getElementById('item-name')
const button = form.querySelector('button')
const formError = document.getElementById('form-error')

function setStatus(state, detail) {
  statusEl.className = 'status status-' + state
  statusEl.textContent = 'API: ' + state + (detail ? ' (' + detail + ')' : '')
}

function render(items) {
  listEl.replaceChildren(
    ...items.map((item) => {
      const li = document.createElement('li')
      const name = document.createElement('span')
      name.textContent = item.name
      const time = document.createElement('time')
      time.dateTime = item.created_at
      const date = new Date(item.created_at)
      time.textContent = Number.isNaN(date.getTime()) ? '' : date.toLocaleString()
      li.append(name, time)
      return li
    }),
  )
  emptyEl.hidden = items.length > 0
}

async function refresh() {
  try {
    render(await request('/api/items'))
    setStatus('up')
  } catch (err) {
    setStatus('down', err.message)
  }
}

function showError(message) {
  formError.textContent = message
  formError.hidden = !message
}

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  const name = input.value.trim()
  if (!name) {
    showError('Enter a name.')
    return
  }
  button.disabled = true
  showError('')
  try {
    await request('/api/items', { body: { name } })
    input.value = ''
    await refresh()
  } catch (err) {
    showError(err.message)
  } finally {
    button.disabled = false
  }
})

refresh()
setInterval(refresh, REFRESH_MS)
