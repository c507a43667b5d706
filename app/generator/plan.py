"""What a generated street looks like, decided from the seed alone (no database): same seed, same street.

Sizes follow the seeds (DOMAIN.md): compounds of 100–3,000 households, communities of a few thousand
households, 1–3 compounds each; walk-ups of 6 floors and high-rises of 18–30 floors; households of
mostly 2–4 people; most give a contact phone on the roster.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from app.places.service import CODE_ALPHABET

COMMUNITY_STEMS = (
    "玫瑰里", "青枫", "金桥", "翠苑", "和平", "新华", "阳光", "春晖", "锦绣", "东湖", "西园", "南苑", "北星",
    "枫林", "桂花", "紫竹", "梅园", "兰亭", "荷塘", "松鹤", "柳岸", "清水", "白云", "绿洲", "康乐", "永安",
    "长青", "明珠", "凤凰", "景福",
)
COMPOUND_SUFFIXES = ("小区", "花园", "新村", "家园")
MEMBERS_WEIGHTS = {1: 10, 2: 26, 3: 34, 4: 18, 5: 9, 6: 3}
PHONE_SHARE = 0.85  # households with a contact phone on the roster


@dataclass
class HouseholdPlan:
    unit: str
    door_plate: str
    members: int
    phone: str | None
    public_code: str


@dataclass
class BuildingPlan:
    name: str
    households: list[HouseholdPlan] = field(default_factory=list)


@dataclass
class CompoundPlan:
    name: str
    buildings: list[BuildingPlan] = field(default_factory=list)


@dataclass
class CommunityPlan:
    name: str
    compounds: list[CompoundPlan] = field(default_factory=list)

    @property
    def households(self) -> int:
        return sum(len(b.households) for c in self.compounds for b in c.buildings)


@dataclass
class StreetPlan:
    seed: int
    city: str
    district: str
    name: str
    organisation: str
    communities: list[CommunityPlan] = field(default_factory=list)

    @property
    def households(self) -> int:
        return sum(c.households for c in self.communities)


def _building(rng: random.Random, name: str, codes: set[str]) -> BuildingPlan:
    high_rise = rng.random() < 0.4
    floors = rng.randint(18, 30) if high_rise else 6
    units = rng.choice((1, 2)) if high_rise else rng.choice((2, 3))
    doors = 4 if high_rise else 2
    building = BuildingPlan(name=name)
    members, weights = zip(*MEMBERS_WEIGHTS.items(), strict=True)
    for unit in range(1, units + 1):
        for floor in range(1, floors + 1):
            for door in range(1, doors + 1):
                phone = None
                if rng.random() < PHONE_SHARE:
                    phone = f"1{rng.choice('35789')}{rng.randrange(10**9):09d}"
                while True:
                    code = "".join(rng.choice(CODE_ALPHABET) for _ in range(8))
                    if code not in codes:
                        codes.add(code)
                        break
                building.households.append(
                    HouseholdPlan(
                        unit=str(unit),
                        door_plate=f"{floor}{door:02d}",
                        members=rng.choices(members, weights)[0],
                        phone=phone,
                        public_code=code,
                    )
                )
    return building


def plan_street(seed: int, communities: int, households_per_community: int) -> StreetPlan:
    """A street of `communities` communities of about `households_per_community` households each."""
    rng = random.Random(seed)
    street = StreetPlan(
        seed=seed,
        city="苏州市",
        district="昆山市",
        name=f"演示街道{seed}",
        organisation=f"绿色家园环保服务中心（演示{seed}）",
    )
    codes: set[str] = set()
    stems = list(COMMUNITY_STEMS)
    rng.shuffle(stems)
    for i in range(communities):
        stem = stems[i % len(stems)] + ("" if i < len(stems) else str(i // len(stems) + 1))
        community = CommunityPlan(name=f"{stem}社区")
        compound_count = 1 if households_per_community < 600 else rng.randint(1, 3)
        for k in range(compound_count):
            suffix = COMPOUND_SUFFIXES[k % len(COMPOUND_SUFFIXES)]
            community.compounds.append(CompoundPlan(name=f"{stem}{suffix}"))
        number = 1
        while community.households < households_per_community:
            compound = community.compounds[(number - 1) % compound_count]
            compound.buildings.append(_building(rng, f"{number}号楼", codes))
            number += 1
        street.communities.append(community)
    return street
