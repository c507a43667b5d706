// History-mode routes under /console/ (the service answers index.html for any of them). A page names
// the role set it needs; the menu shows only pages the current scope's roles may use.
import { createRouter, createWebHistory } from 'vue-router'
import { session, whenSignedOut } from './api'
import { can, loadPlaces, places } from './scope'

export const pages = [
  { path: '/households', name: 'households', need: 'staff', icon: 'House', component: () => import('./views/Households.vue') },
  { path: '/roster', name: 'roster', need: 'managers', icon: 'Upload', component: () => import('./views/Roster.vue') },
  { path: '/labels', name: 'labels', need: 'managers', icon: 'Printer', component: () => import('./views/Labels.vue') },
  { path: '/rules', name: 'rules', need: 'managers', icon: 'Setting', component: () => import('./views/Rules.vue') },
  { path: '/rewards', name: 'rewards', need: 'managers', icon: 'Present', component: () => import('./views/Rewards.vue') },
  { path: '/desk', name: 'desk', need: 'clerks', icon: 'Shop', component: () => import('./views/Desk.vue') },
  { path: '/cheques', name: 'cheques', need: 'issuers', icon: 'Tickets', component: () => import('./views/Cheques.vue') },
  { path: '/recycling', name: 'recycling', need: 'staff', icon: 'Refresh', component: () => import('./views/Recycling.vue') },
  { path: '/compost', name: 'compost', need: 'staff', icon: 'Grape', component: () => import('./views/Compost.vue') },
  { path: '/volunteers', name: 'volunteers', need: 'field', icon: 'User', component: () => import('./views/Volunteers.vue') },
  { path: '/reports', name: 'reports', need: 'reports', icon: 'DataAnalysis', scopes: ['community', 'street', 'organisation'], component: () => import('./views/Reports.vue') },
  { path: '/oversight', name: 'oversight', need: 'managers', icon: 'View', component: () => import('./views/Oversight.vue') },
]

export function allowed(page) {
  const kind = session.scope?.kind
  return (page.scopes || ['community']).includes(kind) && can(page.need)
}

export function firstPage() {
  const page = pages.find(allowed)
  return page ? page.path : '/none'
}

export const router = createRouter({
  history: createWebHistory('/console/'),
  routes: [
    { path: '/login', name: 'login', component: () => import('./views/Login.vue'), meta: { anonymous: true } },
    {
      path: '/',
      component: () => import('./views/Layout.vue'),
      children: [
        { path: '', name: 'home', component: () => import('./views/Nothing.vue') },
        { path: '/none', name: 'none', component: () => import('./views/Nothing.vue') },
        ...pages.map((p) => ({ path: p.path, name: p.name, component: p.component, meta: { page: p } })),
        { path: '/households/:id', name: 'household', component: () => import('./views/Household.vue'), meta: { page: pages[0] } },
      ],
    },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  if (to.meta.anonymous) return true
  if (!session.access) return { name: 'login', query: { next: to.fullPath } }
  if (!places.loaded) {
    try { await loadPlaces() } catch { return { name: 'login', query: { next: to.fullPath } } }
  }
  // The home page is the first page the scope's roles may use (decided once the grants are known).
  if (to.name === 'home' || to.name === 'none') {
    const first = firstPage()
    return first === to.path ? true : first
  }
  const page = to.meta.page
  if (page && !allowed(page)) return firstPage()
  return true
})

whenSignedOut(() => {
  const here = router.currentRoute.value
  if (here.name !== 'login') router.push({ name: 'login', query: { next: here.fullPath } })
})
