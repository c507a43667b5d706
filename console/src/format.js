// Times as the staff read them: local date and time, minutes.
export function when(iso) {
  if (!iso) return ''
  const d = new Date(iso)
  const pad = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

export function kg(grams) {
  return grams == null ? '' : (grams / 1000).toFixed(2)
}
