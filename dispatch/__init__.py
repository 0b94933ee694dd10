"""Webhook dispatch: subscriptions, the durable outbox, signed delivery with retries, and the
verification deadline that forwards unverified fires (docs/webhooks.md).

Modules: `config` (settings), `signing` (Standard Webhooks HMAC), `secretbox` (secrets at
rest), `endpoints` (subscription and delivery-log queries), `payload` (the versioned body),
`retry` (what to do after an attempt), `delivery` (one endpoint's ordered queue), `health`
(endpoint-failing alarms), `forwarding` (verification deadline), `dispatcher` (the process).
"""
