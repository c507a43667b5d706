"""The place hierarchy: street (街道) → community (社区) → compound (小区) → building (楼栋) → household (户)."""
