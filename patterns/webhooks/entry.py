"""The registry entry of the `webhooks` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import PUSH, Pattern

HERE = __package__

WEBHOOKS = Pattern(
    name="webhooks",
    label="Webhooks (aiohttp, HMAC-signed, retried)",
    kind=PUSH,
    server_module=f"{HERE}.server",
    driver_path=f"{HERE}.driver:WebhookDriver",
    options_path=f"{HERE}.driver:WebhookOptions",
    color="#9467bd",
    promises="at least once: retried until acknowledged; receivers deduplicate",
    packages=("aiohttp", "httptools"),
)

PATTERNS = [
    WEBHOOKS,
    WEBHOOKS.variant(
        name="webhooks-no-retry",
        label="Webhooks without retries (one attempt per event)",
        fixed_options={"max_attempts": 1},
        ablation="the provider's retries",
        color="#c5b0d5",
        promises="at most once: one attempt per event",
    ),
    WEBHOOKS.variant(
        name="webhooks-no-dedup",
        label="Webhooks, receivers without deduplication",
        fixed_options={"deduplicate": False},
        ablation="the receivers' deduplication",
        color="#8c6d31",
        promises="at least once, and redeliveries processed again",
    ),
    WEBHOOKS.variant(
        name="webhooks-no-verify",
        label="Webhooks, receivers without signature checks",
        fixed_options={"verify_signatures": False},
        ablation="the receivers' signature checks",
        color="#e7969c",
        promises="at least once, and forged deliveries accepted",
    ),
]
