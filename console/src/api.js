// The console's only way to the service: the public API under /api/v1, with the signed-in staff
// member's bearer token. A 401 refreshes the tokens once (rotation) and retries, so a page in use is
// never lost to an expired access token; a refused refresh signs out and comes back to the same page.
import { reactive } from 'vue'

const STORE = 'jianfei-console'
const saved = JSON.parse(sessionStorage.getItem(STORE) || 'null') || {}

export const session = reactive({
  access: saved.access || null,
  refresh: saved.refresh || null,
  expiresAt: saved.expiresAt || 0,
  user: saved.user || null,
  scope: saved.scope || null, // {kind: 'community'|'street'|'organisation', id}
  lang: localStorage.getItem(`${STORE}-lang`) || 'zh-CN',
})

export function persist() {
  const { access, refresh, expiresAt, user, scope } = session
  sessionStorage.setItem(STORE, JSON.stringify({ access, refresh, expiresAt, user, scope }))
  localStorage.setItem(`${STORE}-lang`, session.lang)
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {}
    super(err.message || (typeof body?.detail === 'string' ? body.detail : `HTTP ${status}`))
    this.status = status
    this.code = err.code
    this.field = err.field
  }
}

let onSignedOut = () => {}
export function whenSignedOut(fn) { onSignedOut = fn }

let refreshing = null
let timer = null

function takeTokens(pair) {
  session.access = pair.access_token
  session.refresh = pair.refresh_token
  session.expiresAt = Date.now() + pair.expires_in * 1000
  session.user = pair.user
  persist()
  schedule()
}

// Refresh a minute before the access token ends, so a form being filled in is not interrupted.
export function schedule() {
  clearTimeout(timer)
  if (!session.refresh) return
  const wait = Math.max(5000, session.expiresAt - Date.now() - 60000)
  timer = setTimeout(() => refreshTokens().catch(() => {}), wait)
}

export function refreshTokens() {
  if (!refreshing) {
    refreshing = fetch('/api/v1/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept-Language': session.lang },
      body: JSON.stringify({ refresh_token: session.refresh }),
    })
      .then(async (r) => {
        if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null))
        takeTokens(await r.json())
      })
      .finally(() => { refreshing = null })
  }
  return refreshing
}

export async function signIn(username, password) {
  takeTokens(await api('/auth/password/login', { method: 'POST', body: { username, password }, anonymous: true }))
}

export async function signOut() {
  const refresh = session.refresh
  clearTimeout(timer)
  if (refresh) {
    await api('/auth/logout', { method: 'POST', body: { refresh_token: refresh } }).catch(() => {})
  }
  Object.assign(session, { access: null, refresh: null, expiresAt: 0, user: null, scope: null })
  persist()
}

function clear() {
  clearTimeout(timer)
  Object.assign(session, { access: null, refresh: null, expiresAt: 0, user: null })
  persist()
  onSignedOut()
}

// A key for a write a retry must not repeat (Idempotency-Key / client_id).
export function newKey(prefix = 'console') {
  const rnd = globalThis.crypto?.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`
  return `${prefix}-${rnd}`
}

function query(params) {
  if (!params) return ''
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.append(k, v)
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}

// JSON in, JSON out; `raw: true` answers the Response (files); `form` sends multipart.
export async function api(path, { method = 'GET', body, form, params, raw = false, anonymous = false, headers = {}, onUploadProgress } = {}, retried = false) {
  const url = `/api/v1${path}${query(params)}`
  const h = { 'Accept-Language': session.lang, ...headers }
  if (!anonymous && session.access) h.Authorization = `Bearer ${session.access}`
  if (body !== undefined) h['Content-Type'] = 'application/json'
  let response
  if (form && onUploadProgress) {
    response = await upload(url, method, h, form, onUploadProgress)
  } else {
    response = await fetch(url, { method, headers: h, body: form || (body !== undefined ? JSON.stringify(body) : undefined) })
  }
  if (response.status === 401 && !anonymous && session.refresh && !retried) {
    try {
      await refreshTokens()
    } catch {
      clear()
      throw new ApiError(401, await response.json().catch(() => null))
    }
    return api(path, { method, body, form, params, raw, anonymous, headers, onUploadProgress }, true)
  }
  if (response.status === 401 && !anonymous) clear()
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null))
  if (raw) return response
  if (response.status === 204) return null
  const text = await response.text()
  return text ? JSON.parse(text) : null
}

// fetch() reports no upload progress; XMLHttpRequest does (Element Plus shows it in the upload list).
function upload(url, method, headers, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open(method, url)
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v)
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(Math.round((e.loaded / e.total) * 100)) }
    xhr.onerror = () => reject(new Error('network'))
    xhr.onload = () => resolve(new Response(xhr.responseText, { status: xhr.status, headers: { 'Content-Type': 'application/json' } }))
    xhr.send(form)
  })
}

// Every page of a cursor-paged list (small lists: stations, catalogue, buildings).
export async function all(path, params = {}) {
  const items = []
  let cursor = null
  do {
    const page = await api(path, { params: { ...params, cursor, limit: 200 } })
    items.push(...page.items)
    cursor = page.next_cursor
  } while (cursor && items.length < 5000)
  return items
}

function filename(response, fallback) {
  const cd = response.headers.get('Content-Disposition') || ''
  const star = /filename\*=UTF-8''([^;]+)/i.exec(cd)
  if (star) return decodeURIComponent(star[1])
  const plain = /filename="?([^";]+)"?/i.exec(cd)
  return plain ? plain[1] : fallback
}

// Download a file the API answers (XLSX, CSV, PDF) as the same bytes, under the server's name.
export async function download(path, opts = {}, fallback = 'download') {
  const response = await api(path, { ...opts, raw: true })
  const blob = await response.blob()
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = filename(response, fallback)
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 60000)
  return a.download
}

// A file fetched with the token, as a blob: URL a frame or a new tab can show (statement, labels).
export async function blobUrl(path, opts = {}) {
  const response = await api(path, { ...opts, raw: true })
  return URL.createObjectURL(await response.blob())
}
