"""Reminders to residents through WeChat subscribe messages (订阅消息): recycling day tomorrow, compost ready."""
