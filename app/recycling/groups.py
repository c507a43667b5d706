"""Waste groups (GB/T 19095-2019): the four groups every recycling category belongs to, their names
in cities that name them their own way, and the group a common category code takes by default.

The group of a community's category is data (`recycling_rate.waste_group`, set by its committee);
the defaults below fill it when a rate is created without one, and place a code an event takes
that the community's rate table does not list.
"""

from __future__ import annotations

from enum import StrEnum


class WasteGroup(StrEnum):
    recyclable = "recyclable"  # 可回收物
    hazardous = "hazardous"  # 有害垃圾
    kitchen = "kitchen"  # 厨余垃圾 (上海：湿垃圾)
    other = "other"  # 其他垃圾 (上海：干垃圾)


# The national standard's names, in the order reports list the groups.
STANDARD_NAMES: dict[WasteGroup, str] = {
    WasteGroup.kitchen: "厨余垃圾",
    WasteGroup.recyclable: "可回收物",
    WasteGroup.hazardous: "有害垃圾",
    WasteGroup.other: "其他垃圾",
}
GROUPS: tuple[WasteGroup, ...] = tuple(STANDARD_NAMES)

# Cities whose regulations name a group differently (上海市生活垃圾管理条例, 杭州/宁波 易腐垃圾, 广州 餐厨垃圾).
CITY_NAMES: dict[str, dict[WasteGroup, str]] = {
    "上海": {WasteGroup.kitchen: "湿垃圾", WasteGroup.other: "干垃圾"},
    "杭州": {WasteGroup.kitchen: "易腐垃圾"},
    "宁波": {WasteGroup.kitchen: "易腐垃圾"},
    "广州": {WasteGroup.kitchen: "餐厨垃圾"},
}

# Common category codes and their group; any other code is a recyclable (what recycling days take).
DEFAULT_GROUPS: dict[str, WasteGroup] = {
    **dict.fromkeys(
        ("hazardous", "battery", "batteries", "button_battery", "lamp", "bulb", "fluorescent_lamp", "medicine",
         "expired_medicine", "paint", "paint_can", "pesticide", "thermometer", "mercury", "solvent", "x_ray_film"),
        WasteGroup.hazardous,
    ),
    **dict.fromkeys(("kitchen", "food", "food_waste", "compost", "fruit_peel", "leaves"), WasteGroup.kitchen),
    **dict.fromkeys(("other", "residual", "dry"), WasteGroup.other),
}


def default_group(code: str) -> WasteGroup:
    return DEFAULT_GROUPS.get(code, WasteGroup.recyclable)


def _city_key(city: str | None) -> str:
    return (city or "").strip().removesuffix("市")


def group_names(city: str | None) -> dict[WasteGroup, str]:
    """The groups' names in a city: its own where it has them, else the standard's."""
    return STANDARD_NAMES | CITY_NAMES.get(_city_key(city), {})


def group_label(group: WasteGroup | str, cities: set[str | None]) -> str:
    """How a report over communities in `cities` names a group: the city's own name with the standard
    one beside it when all its communities are in one city that names it differently (湿垃圾（厨余垃圾）),
    else the standard name."""
    group = WasteGroup(group)
    standard = STANDARD_NAMES[group]
    keys = {_city_key(c) for c in cities}
    if len(keys) == 1:
        own = group_names(next(iter(keys)))[group]
        if own != standard:
            return f"{own}（{standard}）"
    return standard
