// Client for the backend's items API (see the backend README for the contract).

const TIMEOUT_MS = 10_000

// ApiError is thrown for any answer that is not 2xx; status is 0 when the request failed.
export class ApiError extends Error {
  constructor(status, message) {
    super(message)
    this.name = 'ApiError'
    this.status = status
  }
}

async function request(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  let res
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
  } catch (err) {
    throw new ApiError(0, `cannot reach the API: ${err.message}`)
  }
  const text = await res.text()
  let data = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = null
    }
  }
  if (!res.ok) {
    const detail = data && typeof data.error === 'string' ? data.error : res.statusText
    throw new ApiError(res.status, `${res.status} ${detail}`.trim())
  }
  return data
}

// listItems returns the newest items first.
export function listItems() {
  return request('/api/items')
}

// createItem stores an item called name and returns it with its id and created_at.
export function createItem(name) {
  return request('/api/items', { method: 'POST', body: { name } })
}
