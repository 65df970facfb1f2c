"""What the webhook provider and its receivers agree on: the headers, the signature
(HMAC-SHA256 over "timestamp.body", as Stripe and Standard Webhooks sign) and the retry
backoff the receivers allow for when they wait for redeliveries."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Webhook-Signature"
ID_HEADER = "Webhook-Id"
RETRY_BASE_BACKOFF_S = 0.1
RETRY_MAX_BACKOFF_S = 2.0


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, b"%d.%s" % (timestamp, body), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
