"""Recycling days (资源回收日): schedules and exceptions, dated events, rates, weigh-ins, where things went."""
