import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, createItem, listItems } from './api.js'

function answer(status, body) {
  return vi.fn(async () => new Response(body, { status, headers: { 'Content-Type': 'application/json' } }))
}

afterEach(() => {
  vi.unstubAllGlobals()
})

describe('api', () => {
  it('lists items', async () => {
    const fetch = answer(200, '[{"id":2,"name":"b"},{"id":1,"name":"a"}]')
    vi.stubGlobal('fetch', fetch)
    await expect(listItems()).resolves.toEqual([
      { id: 2, name: 'b' },
      { id: 1, name: 'a' },
    ])
    expect(fetch.mock.calls[0][0]).toBe('/api/items')
  })

  it('posts the name as JSON', async () => {
    const fetch = answer(201, '{"id":3,"name":"c","created_at":"2026-01-01T00:00:00Z"}')
    vi.stubGlobal('fetch', fetch)
    const item = await createItem('c')
    expect(item.id).toBe(3)
    const [path, init] = fetch.mock.calls[0]
    expect(path).toBe('/api/items')
    expect(init.method).toBe('POST')
    expect(init.headers['Content-Type']).toBe('application/json')
    expect(JSON.parse(init.body)).toEqual({ name: 'c' })
  })

  it('reports the error the backend sends', async () => {
    vi.stubGlobal('fetch', answer(400, '{"error":"name must be 1 to 200 characters"}'))
    const err = await createItem('').catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.status).toBe(400)
    expect(err.message).toBe('400 name must be 1 to 200 characters')
  })

  it('reports an unreachable API with status 0', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => {
      throw new TypeError('fetch failed')
    }))
    const err = await listItems().catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.status).toBe(0)
  })
})
