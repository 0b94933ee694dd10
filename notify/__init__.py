"""Notifications, escalation, duty rosters and heightened watch (docs/notifications.md).

A library: it imports only the kernel and org/. `firetower notify` (cli/notify.py) runs its
worker; the API's routes call its writers."""
