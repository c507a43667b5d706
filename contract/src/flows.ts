// The resident's and the volunteer's flows, written only against the types generated from
// openapi/openapi.json (build/api.d.ts): if the contract changes under the mini-program, this stops
// type-checking. tests/test_contract_ts.py type-checks it and runs it against a live service.
//
//   node build/js/src/flows.js <base url> <json: {wechatCode, phoneCode, username, password, payload, communityId, scannedAt}>
import createClient from "openapi-fetch";
import type { components, paths } from "../build/api.js";

type ErrorBody = components["schemas"]["ErrorBody"];
type ScanIn = components["schemas"]["ScanIn"];

interface Inputs {
  wechatCode: string;
  phoneCode: string;
  username: string;
  password: string;
  payload: string;
  communityId: number;
  scannedAt: string;
}

function must<T>(result: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (result.data === undefined) {
    const error = (result.error as { error?: ErrorBody } | undefined)?.error;
    throw new Error(`${what}: ${result.response.status} ${error?.code ?? ""} ${error?.message ?? ""}`);
  }
  return result.data;
}

// The JSON answers: an operation may also answer another format when asked (?format=html), not here.
function signedIn(base: string, token: string) {
  return createClient<paths, "application/json">({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } });
}

async function resident(base: string, input: Inputs) {
  const anonymous = createClient<paths>({ baseUrl: base });
  const tokens = must(await anonymous.POST("/api/v1/auth/wechat/login", { body: { code: input.wechatCode } }), "wechat login");
  let api = signedIn(base, tokens.access_token);
  const bound = must(await api.POST("/api/v1/auth/wechat/phone", { body: { code: input.phoneCode } }), "bind phone");
  const household = bound.household_ids[0];
  if (household === undefined) throw new Error("the phone matched no household");
  // Binding answers new tokens that name the household joined.
  api = signedIn(base, bound.tokens.access_token);
  const me = must(await api.GET("/api/v1/me"), "me");
  const community = { community_id: input.communityId };
  // The notice board: when and where to put rubbish out, and what earns what.
  const windows = must(await api.GET("/api/v1/communities/{community_id}/drop-windows", { params: { path: community } }), "drop windows");
  const stations = must(await api.GET("/api/v1/communities/{community_id}/stations", { params: { path: community } }), "stations");
  const rules = must(await api.GET("/api/v1/communities/{community_id}/points-rules/current", { params: { path: community } }), "rules");
  const lookups = [];
  for (const q of ["电池", "dianchi", "大骨头"]) {
    const found = must(await api.GET("/api/v1/communities/{community_id}/guide", { params: { path: community, query: { q } } }), `guide ${q}`);
    lookups.push(found.items[0]?.group ?? null);
  }
  // A refresh whose answer was lost, sent again: the same new pair, the session kept.
  const renewed = must(await anonymous.POST("/api/v1/auth/refresh", { body: { refresh_token: bound.tokens.refresh_token } }), "refresh");
  const again = must(await anonymous.POST("/api/v1/auth/refresh", { body: { refresh_token: bound.tokens.refresh_token } }), "refresh again");
  api = signedIn(base, renewed.access_token);
  const passbook = must(await api.GET("/api/v1/households/{household_id}/passbook", { params: { path: { household_id: household } } }), "passbook");
  const statement = must(
    await api.GET("/api/v1/households/{household_id}/statement", { params: { path: { household_id: household } } }),
    "statement",
  );
  const claims = must(
    await api.GET("/api/v1/households/{household_id}/compost-claims", { params: { path: { household_id: household } } }),
    "compost claims",
  );
  const communities = must(await api.GET("/api/v1/communities"), "communities");
  return {
    household,
    me: me.household_ids,
    windows: windows.items.length,
    stations: stations.items.length,
    rulesCorrect: rules.checkin_correct,
    lookups,
    refreshKept: renewed.refresh_token === again.refresh_token,
    balance: passbook.balance,
    unit: passbook.unit,
    statementLines: statement.items.length,
    statementBalance: statement.balance,
    claims: claims.items.length,
    communities: communities.items.map((c) => c.id),
  };
}

async function volunteer(base: string, input: Inputs) {
  const anonymous = createClient<paths>({ baseUrl: base });
  const tokens = must(
    await anonymous.POST("/api/v1/auth/password/login", { body: { username: input.username, password: input.password } }),
    "password login",
  );
  const api = signedIn(base, tokens.access_token);
  const community = { community_id: input.communityId };
  const stations = must(await api.GET("/api/v1/communities/{community_id}/stations", { params: { path: community } }), "stations");
  const station = stations.items.find((s) => s.active !== false);
  if (station === undefined) throw new Error("no active station");
  const household = must(await api.POST("/api/v1/scan/resolve", { body: { payload: input.payload } }), "resolve");
  const scan: ScanIn = { client_id: `ts-${Date.now()}`, payload: input.payload, station_id: station.id, result: "correct" };
  const first = must(await api.POST("/api/v1/communities/{community_id}/checkins", { params: { path: community }, body: scan }), "scan");
  const resent = must(await api.POST("/api/v1/communities/{community_id}/checkins", { params: { path: community }, body: scan }), "re-sent scan");
  const batch = must(
    await api.POST("/api/v1/communities/{community_id}/checkins/batch", {
      params: { path: community },
      body: { scans: [{ ...scan, client_id: `${scan.client_id}-again`, scanned_at: input.scannedAt }] },
    }),
    "batch",
  );
  const refused = await api.POST("/api/v1/scan/resolve", { body: { payload: "not-a-door-plate" } });
  return {
    household: household.id,
    first: { status: first.status, points: first.points, checkin: first.checkin_id },
    resent: { replayed: resent.replayed, checkin: resent.checkin_id },
    batch: { duplicate: batch.duplicate, first: batch.results[0]?.duplicate_of ?? null },
    refused: refused.error?.error.code ?? null,
  };
}

const [base, raw] = process.argv.slice(2);
if (base === undefined || raw === undefined) throw new Error("usage: flows.js <base url> <inputs json>");
const input = JSON.parse(raw) as Inputs;
const out = { volunteer: await volunteer(base, input), resident: await resident(base, input) };
console.log(JSON.stringify(out));
