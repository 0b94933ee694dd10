"""Webhook vocabulary shared by the API (subscriptions, delivery log, replay) and the
dispatcher (delivery): the tables' data access, the versioned payload, Standard Webhooks
signing and the sealing of endpoint secrets. The dispatcher process lives in `dispatch/`."""
