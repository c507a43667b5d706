// Where the console works (a community, a street or an organisation among the account's grants) and
// which roles the account holds there. The server decides every request; this only hides what a role
// may not do, with the same role sets as the API's permissions (app/*/auth.py).
import { computed, reactive } from 'vue'
import { all, api, persist, session } from './api'

export const ROLE_SETS = {
  staff: ['committee', 'org_admin', 'street_viewer', 'supervisor', 'volunteer', 'clerk', 'compost_keeper'],
  field: ['committee', 'org_admin', 'supervisor', 'volunteer', 'clerk', 'compost_keeper'],
  managers: ['committee', 'org_admin'],
  reports: ['committee', 'org_admin', 'street_viewer'],
  passbook: ['committee', 'org_admin', 'clerk'],
  clerks: ['committee', 'org_admin', 'clerk'],
  issuers: ['committee', 'org_admin', 'clerk', 'volunteer', 'supervisor'],
  keepers: ['committee', 'org_admin', 'compost_keeper'],
  hours: ['committee', 'org_admin', 'street_viewer', 'supervisor'],
}

export const places = reactive({ communities: [], streets: [], loaded: false })

export async function loadPlaces() {
  const grants = session.user?.grants || []
  places.communities = await all('/communities')
  places.streets = grants.some((g) => g.role === 'street_viewer' || g.role === 'platform_admin') ? await all('/streets') : []
  places.loaded = true
  if (!session.scope || !scopeOptions.value.some((o) => o.kind === session.scope.kind && o.id === session.scope.id)) {
    const first = scopeOptions.value[0]
    session.scope = first ? { kind: first.kind, id: first.id } : null
    persist()
  }
}

export const scopeOptions = computed(() => {
  const grants = session.user?.grants || []
  const out = places.communities.map((c) => ({ kind: 'community', id: c.id, name: c.name }))
  for (const g of grants) {
    if (g.role === 'street_viewer' && g.street_id) {
      const s = places.streets.find((x) => x.id === g.street_id)
      out.push({ kind: 'street', id: g.street_id, name: s ? `${s.district}${s.name}` : `#${g.street_id}` })
    }
    if (g.role === 'org_admin' && g.organisation_id) {
      out.push({ kind: 'organisation', id: g.organisation_id, name: `#${g.organisation_id}` })
    }
  }
  return out
})

export const community = computed(() =>
  session.scope?.kind === 'community' ? places.communities.find((c) => c.id === session.scope.id) || null : null,
)

// The roles the account holds in the current scope.
export const roles = computed(() => {
  const grants = session.user?.grants || []
  const scope = session.scope
  const out = new Set()
  if (!scope) return out
  for (const g of grants) {
    if (g.role === 'platform_admin') out.add('committee')
    if (scope.kind === 'community') {
      if (g.community_id === scope.id) out.add(g.role)
      // A community is visible through an organisation's or a street's grant: that role applies there.
      if (g.role === 'org_admin' && g.organisation_id && !grants.some((x) => x.community_id === scope.id)) out.add('org_admin')
      if (g.role === 'street_viewer' && g.street_id && community.value?.street_id === g.street_id) out.add('street_viewer')
    } else if (scope.kind === 'street' && g.role === 'street_viewer' && g.street_id === scope.id) {
      out.add('street_viewer')
    } else if (scope.kind === 'organisation' && g.role === 'org_admin' && g.organisation_id === scope.id) {
      out.add('org_admin')
    }
  }
  return out
})

export function can(set) {
  const wanted = ROLE_SETS[set] || [set]
  return wanted.some((r) => roles.value.has(r))
}

export function cid() {
  return session.scope?.kind === 'community' ? session.scope.id : null
}
