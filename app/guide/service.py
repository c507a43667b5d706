"""The sorting guide: an in-memory index of the shipped items (app/guide/data/items.csv, built by
scripts/build_guide.py), searched by Chinese characters, full pinyin and initials, tolerant of typos;
a community's own entries over it; the searches that found nothing, counted; the wrong-sorting reasons
volunteers record, linked to the entries a resident should read.

A search reads the index (built once per process, a few hundred milliseconds) and the community's own
entries (one indexed query); it answers in a few milliseconds (bench/guide_search.py).
"""

from __future__ import annotations

import csv
import functools
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pypinyin import Style, lazy_pinyin
from rapidfuzz import fuzz, process
from sqlalchemy import text
from sqlmodel import Session, select

from app.audit import service as audit
from app.checkins.models import IncorrectReason
from app.core.db import utcnow
from app.guide.models import GuideEntry, GuideEntryIn, GuideMiss, GuideMissPublic, GuideOverride, ReasonGuide
from app.identity.auth import Principal
from app.kit.errors import NotFound
from app.kit.pagination import page_by_keys, page_in_memory
from app.places.models import Community, Street
from app.recycling.groups import STANDARD_NAMES, group_names

DATA = Path(__file__).resolve().parent / "data" / "items.csv"

# GB/T 19095-2019 names the four groups; cities name them their own way (one table: app.recycling.groups).
STANDARD = {group.value: name for group, name in STANDARD_NAMES.items()}
CITIES = {"国家标准": STANDARD} | {
    city: {group.value: name for group, name in group_names(city).items()}
    for city in ("上海", "北京", "广州", "深圳", "苏州", "杭州", "宁波")
}
NAMES_BY_CITY = {group: {city: names[group] for city, names in CITIES.items()} for group in STANDARD}

MAX_RESULTS = 20
CONFIDENT = 80  # a search whose best score is lower only found look-alikes: counted as a miss
FUZZY_HAN = 60  # rapidfuzz ratio (0–100) a typed name must reach against an item's name
FUZZY_PINYIN = 80  # … and typed pinyin against an item's pinyin


@dataclass(frozen=True)
class Item:
    name: str
    group: str
    synonyms: tuple[str, ...]
    instruction: str
    source: str = "guide"


def normalise(query: str) -> str:
    """What a search compares: full-width folded, lower case, no spaces or apostrophes (xi'an)."""
    return "".join(c for c in unicodedata.normalize("NFKC", query).lower() if not c.isspace() and c not in "'’-_·")


def _pinyin(term: str) -> tuple[str, str]:
    """(full pinyin, initials) of a term, without tones, lower case: 大骨头 → (dagutou, dgt)."""
    return "".join(lazy_pinyin(term)).lower(), "".join(lazy_pinyin(term, style=Style.FIRST_LETTER)).lower()


@dataclass
class Index:
    """Search keys of some items: their names and synonyms as typed, in full pinyin and in initials."""

    items: list[Item]
    han: list[str] = field(default_factory=list)
    pinyin: list[str] = field(default_factory=list)
    initials: list[str] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # the item of each key (same position in the three lists)
    exact: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, item in enumerate(self.items):
            for term in dict.fromkeys((item.name, *item.synonyms)):
                han = normalise(term)
                full, short = _pinyin(han)
                self.han.append(han)
                self.pinyin.append(full)
                self.initials.append(short)
                self.owner.append(i)
                for key in (han, full, short):
                    self.exact.setdefault(key, set()).add(i)

    def search(self, query: str) -> dict[int, float]:
        """Item position → score (0–100) of the items the query names, best first when sorted."""
        q = normalise(query)
        if not q:
            return {}
        scores: dict[int, float] = {}

        def hit(i: int, score: float) -> None:
            if score > scores.get(i, 0):
                scores[i] = score

        for i in self.exact.get(q, ()):
            hit(i, 100)
        latin = q.isascii()
        full, short = _pinyin(q)
        if not latin:
            for i in self.exact.get(full, ()):  # a homophone typed for a character (大谷头)
                hit(i, 92)
            for k, han in enumerate(self.han):
                if q in han:
                    hit(self.owner[k], 85 - min(10, len(han) - len(q)))
                elif han in q and len(han) >= 2:  # 一个烂苹果 names 烂苹果 (and less, 苹果)
                    hit(self.owner[k], min(84, 70 + 4 * len(han)))
            for _, score, k in process.extract(q, self.han, scorer=fuzz.ratio, score_cutoff=FUZZY_HAN, limit=MAX_RESULTS):
                hit(self.owner[k], score * 0.8)
        if latin or len(scores) < MAX_RESULTS:
            typed = q if latin else full
            for k, key in enumerate(self.pinyin):
                if key.startswith(typed) and len(typed) >= 2:
                    hit(self.owner[k], 88 - min(10, len(key) - len(typed)))
            if latin:
                for k, key in enumerate(self.initials):
                    if key == q:
                        hit(self.owner[k], 90)
                    elif key.startswith(q) and len(q) >= 2:
                        hit(self.owner[k], 70 - min(10, len(key) - len(q)))
            if len(typed) >= 4:  # a typo in typed pinyin is likely; characters sounding alike less so
                weight = 0.95 if latin else 0.8
                for _, score, k in process.extract(typed, self.pinyin, scorer=fuzz.ratio, score_cutoff=FUZZY_PINYIN, limit=MAX_RESULTS):
                    hit(self.owner[k], score * weight)
        return scores


def read_items(path: Path = DATA) -> list[Item]:
    with path.open(encoding="utf-8", newline="") as f:
        return [
            Item(row["name"], row["group"], tuple(s for s in row["synonyms"].split("|") if s), row["instruction"])
            for row in csv.DictReader(f)
        ]


@functools.cache
def guide() -> Index:
    """The shipped guide's index, built once per process."""
    return Index(read_items())


# --- a community's guide -------------------------------------------------------------------------

def _city(session: Session, community_id: int) -> str:
    city = session.exec(select(Street.city).join(Community, Community.street_id == Street.id).where(Community.id == community_id)).first()
    name = (city or "").removesuffix("市")
    return name if name in CITIES else "国家标准"


def _entry(item: Item, city: str) -> GuideEntry:
    return GuideEntry(
        name=item.name, group=item.group, group_name=STANDARD[item.group], local_name=CITIES[city][item.group],
        names_by_city=NAMES_BY_CITY[item.group], synonyms=list(item.synonyms), instruction=item.instruction, source=item.source,
    )


def _overrides(session: Session, community_id: int) -> dict[str, Item]:
    rows = session.exec(select(GuideOverride).where(GuideOverride.community_id == community_id)).all()
    return {r.name: Item(r.name, r.group, tuple(r.synonyms), r.instruction, "community") for r in rows}


def search(session: Session, community_id: int, query: str, limit: int) -> tuple[list[GuideEntry], bool]:
    """The entries a resident's search names in their community (its own entries in place of the
    shipped ones of the same name), best first, and whether the search found the item (a confident
    match, not only look-alikes); a search that did not is counted (`misses`)."""
    own = _overrides(session, community_id)
    base = guide()
    ranked: dict[str, tuple[float, Item]] = {}
    for i, score in base.search(query).items():
        item = base.items[i]
        ranked[item.name] = (score, own.get(item.name, item))
    if own:
        mine = Index(list(own.values()))
        for i, score in mine.search(query).items():
            item = mine.items[i]
            if score >= ranked.get(item.name, (0, None))[0]:
                ranked[item.name] = (score, item)
    best = sorted(ranked.values(), key=lambda si: (-si[0], len(si[1].name), si[1].name))[:limit]
    found = bool(best) and best[0][0] >= CONFIDENT
    if not found:
        _count_miss(session, community_id, query)
    city = _city(session, community_id)
    return [_entry(item, city) for _, item in best], found


_MISS = text("""INSERT INTO guide_miss (community_id, query, count, first_at, last_at) VALUES (:c, :q, 1, :now, :now)
ON CONFLICT (community_id, query) DO UPDATE SET count = guide_miss.count + 1, last_at = :now""")


def _count_miss(session: Session, community_id: int, query: str) -> None:
    q = normalise(query)[:40]
    if q:
        session.execute(_MISS, {"c": community_id, "q": q, "now": utcnow()})
        session.commit()


def misses(session: Session, community_id: int, cursor: str | None, limit: int) -> tuple[list[GuideMissPublic], str | None]:
    """What residents searched for and did not find, most asked first (then the latest asked)."""
    stmt = select(GuideMiss).where(GuideMiss.community_id == community_id)
    rows, next_cursor = page_by_keys(session, stmt, [GuideMiss.count, GuideMiss.last_at, GuideMiss.id], cursor, limit, descending=True)
    return [GuideMissPublic(query=r.query, count=r.count, first_at=r.first_at, last_at=r.last_at) for r in rows], next_cursor


def _not_in_guide() -> NotFound:
    return NotFound("not_in_guide", "指南中没有这个物品", "This item is not in the guide", "name")


def read_entry(session: Session, community_id: int, name: str) -> GuideEntry:
    item = _overrides(session, community_id).get(name) or next((i for i in guide().items if i.name == name), None)
    if item is None:
        raise _not_in_guide()
    return _entry(item, _city(session, community_id))


def community_entries(session: Session, community_id: int, cursor: str | None, limit: int) -> tuple[list[GuideEntry], str | None]:
    """By name (the community's own entries are held in memory, a few dozen at most)."""
    city = _city(session, community_id)
    items, next_cursor = page_in_memory(list(_overrides(session, community_id).values()), lambda i: i.name, cursor, limit)
    return [_entry(item, city) for item in items], next_cursor


def put_entry(session: Session, principal: Principal, community_id: int, name: str, data: GuideEntryIn) -> GuideEntry:
    """Set the community's own entry for an item (its bins take it elsewhere, or the guide lacks it);
    audited. Sending the same entry again changes nothing."""
    name = name.strip()
    row = session.exec(select(GuideOverride).where(GuideOverride.community_id == community_id, GuideOverride.name == name)).first()
    synonyms = list(dict.fromkeys(s.strip() for s in data.synonyms if s.strip() and s.strip() != name))
    if row is None:
        row = GuideOverride(community_id=community_id, name=name, group=data.group.value, synonyms=synonyms,
                            instruction=data.instruction.strip(), updated_by=principal.user_id)
        action = "guide.add" if not any(i.name == name for i in guide().items) else "guide.override"
    elif (row.group, row.synonyms, row.instruction) == (data.group.value, synonyms, data.instruction.strip()):
        return read_entry(session, community_id, name)  # sent again: nothing changes, nothing is audited
    else:
        row.group, row.synonyms, row.instruction = data.group.value, synonyms, data.instruction.strip()
        row.updated_at, row.updated_by = utcnow(), principal.user_id
        action = "guide.change"
    session.add(row)
    session.flush()
    audit.record_act(session, principal, action, row, community_id, name=name, group=row.group, instruction=row.instruction)
    session.commit()
    return read_entry(session, community_id, name)


def delete_entry(session: Session, principal: Principal, community_id: int, name: str) -> None:
    """Drop the community's own entry: the shipped one (if any) applies again; audited."""
    row = session.exec(select(GuideOverride).where(GuideOverride.community_id == community_id, GuideOverride.name == name.strip())).first()
    if row is None:
        raise NotFound("not_overridden", "本社区没有这个物品的规定", "This community has no entry of its own for this item", "name")
    audit.record_act(session, principal, "guide.remove", row, community_id, name=row.name, group=row.group)
    session.delete(row)
    session.commit()


# --- wrong-sorting reasons → guide entries --------------------------------------------------------

REASONS: dict[IncorrectReason, tuple[str, str, tuple[str, ...]]] = {
    IncorrectReason.bag_not_removed: ("未破袋", "厨余垃圾要破袋投放：倒进厨余桶，袋子投其他垃圾", ("塑料袋", "垃圾袋", "保鲜袋")),
    IncorrectReason.mixed: ("混投", "厨余里混了其他垃圾：纸巾、大骨头、贝壳、一次性筷子都是其他垃圾",
                            ("用过的纸巾", "大骨头", "贝壳", "一次性筷子", "粽叶", "椰子壳")),
    IncorrectReason.wrong_bin: ("投错桶", "看清桶上的类别再投；这些最常投错", ("干电池", "充电电池", "牛奶盒", "过期药品", "荧光灯管", "外卖")),
    IncorrectReason.contaminated: ("含杂质", "厨余里不要有塑料和纸巾：挑出来投其他垃圾", ("餐巾纸", "塑料袋", "牙签", "保鲜膜", "吸管")),
    IncorrectReason.liquid: ("汤水未沥干", "汤水先倒进下水道，沥干再投", ("汤汁", "剩菜", "奶茶", "火锅汤")),
    IncorrectReason.other: ("其他原因", "不确定的物品，先查一查指南", ()),
}
RECENT = timedelta(days=30)


def reasons(session: Session, community_id: int) -> list[ReasonGuide]:
    """Each wrong-sorting reason volunteers record, with what to tell the resident, the guide entries
    behind it, and how often it was recorded here in the last 30 days (most common first)."""
    counts = dict(session.execute(text(
        "SELECT r, count(*) FROM checkin, json_array_elements_text(checkin.reasons) AS r "
        "WHERE community_id = :c AND scanned_at >= :since AND result = 'incorrect' GROUP BY r"
    ), {"c": community_id, "since": utcnow() - RECENT}).all())
    out = []
    for reason, (label, tip, names) in REASONS.items():
        entries = []
        for name in names:
            try:
                entries.append(read_entry(session, community_id, name))
            except NotFound:  # a community may not have it, nor the guide after an edit: left out
                continue
        out.append(ReasonGuide(reason=reason, label=label, tip=tip, items=entries, recent_count=int(counts.get(reason.value, 0))))
    return sorted(out, key=lambda r: -r.recent_count)
