import { useCallback, useEffect, useState } from 'react'
import { createItem, listItems } from './api.js'

const REFRESH_MS = 15_000
const MAX_NAME = 200

// App lists the items the backend stores and adds new ones; the status line tells
// whether the API answers.
export default function App() {
  const [items, setItems] = useState([])
  const [api, setApi] = useState({ state: 'checking', detail: '' })
  const [name, setName] = useState('')
  const [saving, setSaving] = useState(false)
  const [formError, setFormError] = useState('')

  const refresh = useCallback(async () => {
    try {
      setItems(await listItems())
      setApi({ state: 'up', detail: '' })
    } catch (err) {
      setApi({ state: 'down', detail: err.message })
    }
  }, [])

  useEffect(() => {
    refresh()
    const timer = setInterval(refresh, REFRESH_MS)
    return () => clearInterval(timer)
  }, [refresh])

  async function onSubmit(event) {
    event.preventDefault()
    const trimmed = name.trim()
    if (!trimmed) {
      setFormError('Enter a name.')
      return
    }
    setSaving(true)
    setFormError('')
    try {
      await createItem(trimmed)
      setName('')
      await refresh()
    } catch (err) {
      setFormError(err.message)
    } finally {
      setSaving(false)
    }
  }

  return (
    <main className="page">
      <header className="header">
        <h1>Items</h1>
        <p className={`status status-${api.state}`} role="status">
          API: {api.state}
          {api.detail && <span className="status-detail"> ({api.detail})</span>}
        </p>
      </header>

      <form className="add" onSubmit={onSubmit}>
        <label htmlFor="item-name">New item</label>
        <input
          id="item-name"
          value={name}
          maxLength={MAX_NAME}
          onChange={(e) => setName(e.target.value)}
          placeholder="Name"
          autoComplete="off"
        />
        <button type="submit" disabled={saving}>
          {saving ? 'Adding…' : 'Add'}
        </button>
      </form>
      {formError && (
        <p className="error" role="alert">
          {formError}
        </p>
      )}

      {items.length === 0 ? (
        <p className="empty">No items yet.</p>
      ) : (
        <ul className="items">
          {items.map((item) => (
            <li key={item.id}>
              <span>{item.name}</span>
              <time dateTime={item.created_at}>{formatTime(item.created_at)}</time>
            </li>
          ))}
        </ul>
      )}
    </main>
  )
}

function formatTime(value) {
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleString()
}
