// The community's compounds and buildings (for filters, label printing and roster import).
import { all } from './api'

export async function loadCompounds(communityId) {
  return all(`/communities/${communityId}/compounds`)
}

export async function loadBuildings(communityId) {
  const compounds = await loadCompounds(communityId)
  const lists = await Promise.all(compounds.map((c) => all(`/compounds/${c.id}/buildings`)))
  return lists.flatMap((list, i) => list.map((b) => ({ ...b, compound: compounds[i].name })))
}
