"""Community compost (堆肥): sites, bins and their life, drops, readings, harvests shared back as claims."""
