"""Deterministic, realistic Stripe webhook events (API version 2024-06-20) for demos, benchmarks and tests.

`revlens demo` sends these envelopes as signed webhooks to a running server, the benchmarks push
hundreds of thousands of them through the ingest path, and the tests use them as a stand-in for a real
Stripe account. So the output has to be three things at once:

* **Realistic** - a population of customers who subscribe, renew monthly, churn, upgrade, buy one-off
  products through Checkout (once or many times over months), get refunded (fully, partially, twice),
  fail payments, dispute and receive credit notes. Every flow emits the events Stripe emits, with the
  field names, nesting and types of the 2024-06-20 shapes (see `shared/reference/stripe.md`, sections
  2-4) and with ids and amounts that agree across the flow (invoice `amount_paid` == payment intent
  `amount_received` == charge `amount`). Identity fields (`metadata.user_id`, `metadata.amplitude_id`,
  `customer_email`, `receipt_email`, `customer`) are spread the way a real integration spreads them, and
  one person keeps the same ids everywhere, so identity stitching has something to stitch.
* **Deterministic** - everything comes from one `random.Random(seed)`; the default window ends on a
  fixed date, so the same `DemoConfig` gives byte-identical JSON on every machine.
* **Fast** - state lives in small slotted dataclasses and every event is a freshly built plain dict
  (no templates to deep-copy, no I/O), so it runs at tens of thousands of events per second.

The generator works customer by customer: each customer's whole lifecycle is generated flow by flow
(a flow being the handful of events one Stripe action produces), and generation stops after the flow
that reaches `DemoConfig.events`, so the result overshoots the request by fewer than 10 events. The
events are then sorted by `created`. Flows never start later than two hours before `end`, so every
flow is complete and inside the window.
"""

from __future__ import annotations

import bisect
import calendar
import contextlib
import copy
import datetime as dt
import gc
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from revlens.money import THREE_DECIMAL_CURRENCIES, ZERO_DECIMAL_CURRENCIES

__all__ = [
    "NON_REVENUE_EVENT_TYPES",
    "REVENUE_EVENT_TYPES",
    "DemoConfig",
    "generate_deliveries",
    "generate_events",
]

JSON = dict[str, Any]
# (request.id, request.idempotency_key); (None, None) marks events Stripe raised on its own (renewals...).
_Request = tuple[str | None, str | None]
_AUTOMATIC: _Request = (None, None)

# Fixed so that the default output does not depend on the day it is generated.
_DEFAULT_END = calendar.timegm((2026, 11, 1, 0, 0, 0))
_DAY = 86_400
# Longest flow (a renewal waits an hour between invoice.created and finalization, as Stripe does) plus
# margin: no flow starts later than this before `end`, so no event falls outside the window.
_FLOW_SPAN = 2 * 3600

REVENUE_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "charge.succeeded",
        "charge.failed",
        "charge.refunded",
        "charge.dispute.created",
        "checkout.session.completed",
        "credit_note.created",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "refund.created",
    }
)
# Emitted so that receivers prove they ignore what carries no money.
NON_REVENUE_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "customer.created",
        "customer.updated",
        "payment_method.attached",
    }
)


@dataclass(frozen=True)
class DemoConfig:
    """What to generate. The defaults give a small, fixed, demo-sized account."""

    events: int = 2000  # approximate number of events to produce (stop once reached; may exceed by < 10)
    seed: int = 7
    end: int | None = None  # unix seconds of the last possible event; default 2026-11-01T00:00:00Z
    days: int = 180  # history length: events spread over [end - days, end]
    duplicate_rate: float = 0.02  # fraction of deliveries repeated (same envelope, same id) later on
    currencies: tuple[str, ...] = ("usd", "eur", "gbp", "jpy", "kwd")
    api_version: str = "2024-06-20"


def generate_events(config: DemoConfig = DemoConfig()) -> list[dict[str, Any]]:
    """Unique events (no duplicates), sorted by `created`."""
    with _gc_paused():
        return _Generator(config).run()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Generation allocates millions of small, acyclic dicts; the cyclic garbage collector would rescan
    # them over and over (measured 3-4x slower at 100k events, worse for deep copies). Nothing here forms
    # a cycle, so pausing it loses nothing; the previous state is restored even on error.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# Stripe retries with exponential backoff (minutes to days); the exact schedule is not published.
_RETRY_DELAYS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)


def generate_deliveries(config: DemoConfig = DemoConfig()) -> list[dict[str, Any]]:
    """generate_events plus duplicates (the very same dict content re-sent later, as Stripe retries),
    in delivery order.

    `round(len(events) * duplicate_rate)` events are delivered twice; the second delivery is a deep copy
    (so a receiver that mutates one cannot change the other) placed a retry delay after the original.
    A separate RNG picks them, so the unique events are exactly those of `generate_events(config)`.
    """
    events = generate_events(config)
    with _gc_paused():
        return _with_duplicates(events, config)


def _with_duplicates(events: list[JSON], config: DemoConfig) -> list[JSON]:
    rng = random.Random(config.seed * 1_000_003 + 0x5EED)
    count = round(len(events) * config.duplicate_rate)
    schedule: list[tuple[int, int, JSON]] = [(event["created"], i, event) for i, event in enumerate(events)]
    for j, i in enumerate(sorted(rng.sample(range(len(events)), count))):
        original = events[i]
        delay = rng.choice(_RETRY_DELAYS) + int(rng.random() * 60)
        schedule.append((original["created"] + delay, len(events) + j, copy.deepcopy(original)))
    schedule.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in schedule]


# ---------------------------------------------------------------------------------------------------
# Catalogue

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random byte -> base62 character. `byte % 62` slightly favours the first 8 characters, which no one can
# notice in a demo id, and lets one C-level `bytes.translate` replace a Python loop per character (ids are
# the single biggest cost of generation otherwise).
_B62_TABLE = bytes(ord(_B62[i % 62]) for i in range(256))


@dataclass(frozen=True)
class _ProductSpec:
    name: str
    recurring: bool
    prices: dict[str, int]  # unit amount per currency, minor units
    max_quantity: int  # > 1: sold per seat / per pack


_CATALOGUE = (
    _ProductSpec("Starter plan", True, {"usd": 900, "eur": 900, "gbp": 800, "jpy": 1200, "kwd": 2800}, 1),
    _ProductSpec("Pro plan", True, {"usd": 2900, "eur": 2700, "gbp": 2400, "jpy": 4200, "kwd": 8900}, 1),
    _ProductSpec("Team plan", True, {"usd": 1500, "eur": 1400, "gbp": 1200, "jpy": 2200, "kwd": 4600}, 12),
    _ProductSpec("Design pack", False, {"usd": 4900, "eur": 4500, "gbp": 3900, "jpy": 7400, "kwd": 15000}, 1),
    _ProductSpec("API credits", False, {"usd": 1000, "eur": 950, "gbp": 850, "jpy": 1500, "kwd": 3100}, 20),
    _ProductSpec(
        "Onboarding session", False, {"usd": 14900, "eur": 13900, "gbp": 11900, "jpy": 22000, "kwd": 45800}, 1
    ),
)
# Subscription plan mix and one-off product mix (index into _CATALOGUE, weight).
_PLAN_WEIGHTS = ((0, 45), (1, 40), (2, 15))
_ONE_OFF_WEIGHTS = ((3, 35), (4, 50), (5, 15))
# A home-currency mix that looks like a US-based SaaS; currencies not listed get a small share.
_CURRENCY_WEIGHTS = {"usd": 50, "eur": 22, "gbp": 14, "jpy": 8, "kwd": 6}


def _derived_price(usd_cents: int, currency: str) -> int:
    """A price for a currency the catalogue does not list, in that currency's minor units."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return max(10, round(usd_cents * 1.5 / 10) * 10)  # roughly yen-like magnitudes
    if code in THREE_DECIMAL_CURRENCIES:
        return max(10, round(usd_cents * 3 / 10) * 10)  # last digit must be 0 (Stripe rule)
    return usd_cents


def _amount_step(currency: str) -> int:
    # Three-decimal currencies require the last digit to be 0; whole yen look more natural in steps of 10.
    code = currency.upper()
    return 10 if code in THREE_DECIMAL_CURRENCIES or code in ZERO_DECIMAL_CURRENCIES else 1


@dataclass(frozen=True)
class _Price:
    id: str
    product_id: str
    name: str
    currency: str
    unit_amount: int
    recurring: bool
    created: int
    max_quantity: int


# ---------------------------------------------------------------------------------------------------
# Mutable state of the simulated account (rendered into fresh dicts for every event)

_FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jonas", "Kenji", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wei", "Yuki", "Zoe",
)  # fmt: skip
_LAST_NAMES = (
    "Almeida", "Brown", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Khan",
    "Larsen", "Muller", "Novak", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Vargas", "Weber", "Young",
)  # fmt: skip
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_COUNTRY = {"usd": "US", "eur": "DE", "gbp": "GB", "jpy": "JP", "kwd": "KW"}
_BRANDS = ("visa", "visa", "visa", "mastercard", "mastercard", "amex")
_DECLINES = (
    ("insufficient_funds", "Your card has insufficient funds."),
    ("generic_decline", "Your card was declined."),
    ("do_not_honor", "Your card was declined."),
)
_DISPUTE_REASONS = ("fraudulent", "product_not_received", "subscription_canceled", "general", "duplicate")
_REFUND_REASONS = ("requested_by_customer", "requested_by_customer", None, "duplicate")


@dataclass(slots=True)
class _Customer:
    index: int
    id: str
    email: str
    name: str
    currency: str
    country: str
    user_id: str  # the app's own id for this person; sent on a share of payment intents
    user_id_rate: float
    amplitude_id: str | None
    created: int
    invoice_prefix: str
    pm_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    invoice_seq: int = 0
    default_pm: str | None = None


@dataclass(slots=True)
class _PaymentIntent:
    id: str
    customer: _Customer
    amount: int
    currency: str
    description: str | None
    receipt_email: str | None
    metadata: dict[str, str]
    invoice: str | None
    created: int
    client_secret: str
    status: str = "requires_payment_method"
    amount_received: int = 0
    latest_charge: str | None = None
    last_error: tuple[str, str, str] | None = None  # (charge id, decline code, message)


@dataclass(slots=True)
class _Charge:
    id: str
    pi: _PaymentIntent
    created: int
    succeeded: bool
    billing_email: str | None
    balance_transaction: str | None
    decline: tuple[str, str] | None = None
    amount_refunded: int = 0
    disputed: bool = False


@dataclass(slots=True)
class _Subscription:
    id: str
    item_id: str
    customer: _Customer
    price: _Price
    quantity: int
    created: int
    metadata: dict[str, str]
    period_index: int = 0
    period_start: int = 0
    period_end: int = 0
    status: str = "active"
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    cancel_reason: str | None = None
    feedback: str | None = None
    latest_invoice: str | None = None
    # End of the last flow that touched this subscription: later actions (cancel, upgrade) come after it,
    # so an object never shows a state older than one already sent.
    quiet_from: int = 0


@dataclass(slots=True)
class _Invoice:
    id: str
    line_id: str
    customer: _Customer
    subscription: _Subscription | None
    price: _Price
    quantity: int
    billing_reason: str
    created: int
    period_start: int
    period_end: int
    line_period: tuple[int, int]
    status: str = "draft"
    number: str | None = None
    finalized_at: int | None = None
    paid_at: int | None = None
    payment_intent: str | None = None
    charge: str | None = None
    attempt_count: int = 0
    next_payment_attempt: int | None = None

    @property
    def amount(self) -> int:
        return self.price.unit_amount * self.quantity


class _Done(Exception):
    """Raised once enough events exist; unwinds the customer loop."""


def _add_months(anchor: int, months: int) -> int:
    """`anchor` moved by whole calendar months, clamped to month end, as Stripe's billing anchor works."""
    d = dt.datetime.fromtimestamp(anchor, dt.UTC)
    month0 = d.month - 1 + months
    year, month = d.year + month0 // 12, month0 % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return calendar.timegm((year, month, day, d.hour, d.minute, d.second))


# ---------------------------------------------------------------------------------------------------
# The generator


class _Generator:
    def __init__(self, config: DemoConfig) -> None:
        _validate(config)
        self.config = config
        self.rng = random.Random(config.seed)
        self.random = self.rng.random
        self.getrandbits = self.rng.getrandbits
        self.end = _DEFAULT_END if config.end is None else config.end
        self.start = self.end - config.days * _DAY
        self.limit = self.end - _FLOW_SPAN  # latest start of any flow
        self.target = config.events
        self.api_version = config.api_version
        self.events: list[JSON] = []
        self.currencies = config.currencies
        weights = [_CURRENCY_WEIGHTS.get(cur, 5) for cur in self.currencies]
        self.currency_cum = [sum(weights[: i + 1]) for i in range(len(weights))]
        self.prices = self._build_prices()

    # -- small helpers ------------------------------------------------------------------------------

    def _id(self, prefix: str, length: int = 24) -> str:
        return prefix + self.getrandbits(8 * length).to_bytes(length, "big").translate(_B62_TABLE).decode()

    def _request(self, *, idempotent: bool = True) -> _Request:
        key = None
        if idempotent:
            h = f"{self.rng.getrandbits(128):032x}"
            key = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return (self._id("req_", 14), key)

    def _next(self, t: int) -> int:
        # Stripe raises a flow's events within seconds of each other.
        return t + 1 + int(self.random() * 3)

    def _pick(self, weighted: tuple[tuple[int, int], ...]) -> int:
        x = self.random() * sum(w for _, w in weighted)
        for value, w in weighted:
            x -= w
            if x < 0:
                return value
        return weighted[-1][0]

    def _pick_currency(self) -> str:
        x = self.random() * self.currency_cum[-1]
        return self.currencies[bisect.bisect_right(self.currency_cum, x)]

    def _tick(self) -> None:
        # Called at the end of every flow, never inside one, so flows are never cut in half.
        if len(self.events) >= self.target:
            raise _Done

    def _emit(self, etype: str, t: int, obj: JSON, request: _Request, previous: JSON | None = None) -> None:
        data: JSON = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        self.events.append(
            {
                "id": self._id("evt_"),
                "object": "event",
                "api_version": self.api_version,
                "created": t,
                "data": data,
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": request[0], "idempotency_key": request[1]},
                "type": etype,
            }
        )

    def _build_prices(self) -> dict[tuple[str, str], _Price]:
        created = self.start - 30 * _DAY  # the catalogue predates the history
        prices: dict[tuple[str, str], _Price] = {}
        for spec in _CATALOGUE:
            product_id = self._id("prod_")
            for cur in self.currencies:
                amount = spec.prices.get(cur) or _derived_price(spec.prices["usd"], cur)
                prices[(spec.name, cur)] = _Price(
                    self._id("price_"),
                    product_id,
                    spec.name,
                    cur,
                    amount,
                    spec.recurring,
                    created,
                    spec.max_quantity,
                )
        return prices

    def _price(self, catalogue_index: int, currency: str) -> _Price:
        return self.prices[(_CATALOGUE[catalogue_index].name, currency)]

    def _quantity(self, price: _Price, low: int = 1) -> int:
        if price.max_quantity == 1:
            return 1
        return low + int(self.random() * (price.max_quantity - low + 1))

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> list[JSON]:
        if self.target > 0:
            index = 0
            try:
                while True:
                    index += 1
                    self._customer_life(self._new_customer(index))
            except _Done:
                pass
        # Stable sort: events of one flow keep their order even when they share a second.
        self.events.sort(key=lambda event: event["created"])
        return self.events

    def _new_customer(self, index: int) -> _Customer:
        r = self.random
        first = _FIRST_NAMES[int(r() * len(_FIRST_NAMES))]
        last = _LAST_NAMES[int(r() * len(_LAST_NAMES))]
        domain = _DOMAINS[int(r() * len(_DOMAINS))]
        currency = self._pick_currency()
        # Sign-ups grow over time: more customers appear late in the window than early.
        created = self.start + int((self.limit - self.start) * r() ** 0.8)
        # Half the customers come from an integration that tags payments with the app's user id
        # (80% of their payments), giving about 40% of payment intents overall.
        user_id_rate = 0.8 if r() < 0.5 else 0.0
        amplitude_id = str(10_000_000 + int(r() * 890_000_000)) if r() < 0.25 else None
        return _Customer(
            index=index,
            id=self._id("cus_"),
            email=f"{first.lower()}.{last.lower()}{index}@{domain}",
            name=f"{first} {last}",
            currency=currency,
            country=_COUNTRY.get(currency, "US"),
            user_id=f"user_{index:05d}",
            user_id_rate=user_id_rate,
            amplitude_id=amplitude_id,
            created=created,
            invoice_prefix=f"{self.rng.getrandbits(32):08X}",
            pm_id=self._id("pm_"),
            brand=_BRANDS[int(r() * len(_BRANDS))],
            last4=f"{int(r() * 10000):04d}",
            exp_month=1 + int(r() * 12),
            exp_year=2027 + int(r() * 5),
            fingerprint=self._id("", 16),
        )

    def _customer_life(self, c: _Customer) -> None:
        r = self.random
        self._emit("customer.created", c.created, self._customer_obj(c), self._request())
        self._tick()
        subscriber = r() < 0.42
        buys_one_offs = not subscriber or r() < 0.3
        if subscriber:
            self._subscription_life(c, c.created + 60 + int(r() * 1800))
        if buys_one_offs:
            first = c.created + 120 + int(r() * 3600) if not subscriber else c.created + int(r() * 60 * _DAY)
            self._purchases(c, first)

    # -- one-off purchases through Checkout ---------------------------------------------------------

    def _purchases(self, c: _Customer, t: int) -> None:
        r = self.random
        # Some buy once; the rest come back at their own pace (mean gap 1-6 weeks), some many times.
        count = 1
        if r() >= 0.45:
            count = 2
            while r() < 0.7 and count < 40:
                count += 1
        mean_gap = _DAY * (7 + r() * 35)
        for _ in range(count):
            if t > self.limit:
                return
            self._checkout(c, t)
            t += 3600 + int(self.rng.expovariate(1 / mean_gap))

    def _checkout(self, c: _Customer, t: int) -> None:
        r = self.random
        currency = c.currency if r() < 0.93 else self.currencies[int(r() * len(self.currencies))]
        price = self._price(self._pick(_ONE_OFF_WEIGHTS), currency)
        quantity = self._quantity(price)
        session_created = t - 60 - int(r() * 600)
        pi = self._new_pi(c, price.unit_amount * quantity, currency, price.name, None, session_created)
        request = self._request()
        if r() < 0.06:
            # A declined card: Checkout stays open, the customer may retry with another card.
            self._fail_charge(pi, t, request, billing_email=c.email)
            self._tick()
            if r() < 0.5:
                return
            t += 60 + int(r() * 600)
            request = self._request()
        charge, t = self._succeed_charge(pi, t, request, billing_email=c.email)
        t = self._next(t)
        self._emit(
            "checkout.session.completed",
            t,
            self._session_obj(c, pi, price, quantity, session_created),
            request,
        )
        self._tick()
        self._after_sale(charge, t)

    # -- subscriptions ------------------------------------------------------------------------------

    def _subscription_life(self, c: _Customer, t: int) -> None:
        r = self.random
        if t > self.limit:
            return
        price = self._price(self._pick(_PLAN_WEIGHTS), c.currency)
        metadata = {"user_id": c.user_id} if c.user_id_rate else {}
        quantity = self._quantity(price, low=2)
        sub = _Subscription(self._id("sub_"), self._id("si_", 14), c, price, quantity, t, metadata)
        sub.period_start, sub.period_end = t, _add_months(t, 1)
        self._subscription_create(sub, t)
        while True:
            if r() < 0.06:
                self._cancel(sub)
                return
            if r() < 0.05:
                self._change_plan(sub)
            if sub.period_end > self.limit or not self._renew(sub, sub.period_end):
                return

    def _subscription_create(self, sub: _Subscription, t: int) -> None:
        c = sub.customer
        request = self._request()
        self._emit("payment_method.attached", t, self._payment_method_obj(c, t), request)
        t = self._next(t)
        inv = self._new_invoice(sub, t, "subscription_create", (t, sub.period_end), (t, t))
        sub.latest_invoice = inv.id
        self._emit("customer.subscription.created", t, self._subscription_obj(sub), request)
        t = self._next(t)
        self._emit("invoice.created", t, self._invoice_obj(inv), request)
        t = self._next(t)
        pi = self._finalize(inv, t, request)
        charge, t = self._pay_invoice(inv, pi, self._next(t), request)
        if c.default_pm is None:
            c.default_pm = c.pm_id
            t = self._next(t)
            previous = {"invoice_settings": {"default_payment_method": None}}
            self._emit("customer.updated", t, self._customer_obj(c), request, previous)
        sub.quiet_from = t
        self._tick()
        self._after_sale(charge, t, inv)

    def _renew(self, sub: _Subscription, t: int) -> bool:
        """One billing cycle at `t`; False when the subscription ended (payment never recovered)."""
        r = self.random
        previous: JSON = {
            "current_period_end": sub.period_end,
            "current_period_start": sub.period_start,
            "latest_invoice": sub.latest_invoice,
        }
        old_start = sub.period_start
        sub.period_index += 1
        sub.period_start, sub.period_end = t, _add_months(sub.created, sub.period_index + 1)
        inv = self._new_invoice(sub, t, "subscription_cycle", (t, sub.period_end), (old_start, t))
        sub.latest_invoice = inv.id
        self._emit("invoice.created", t, self._invoice_obj(inv), _AUTOMATIC)
        t = self._next(t)
        self._emit("customer.subscription.updated", t, self._subscription_obj(sub), _AUTOMATIC, previous)
        # Stripe leaves a draft renewal invoice open for about an hour before finalizing and charging it.
        t += 3600 + int(r() * 60)
        pi = self._finalize(inv, t, _AUTOMATIC)
        t = self._next(t)
        if r() >= 0.07:
            charge, t = self._pay_invoice(inv, pi, t, _AUTOMATIC)
            sub.quiet_from = t
            self._tick()
            self._after_sale(charge, t, inv)
            return True
        # Dunning: the first attempt fails, Stripe retries three days later.
        retry_at = t + 3 * _DAY
        self._fail_invoice_payment(inv, pi, t, retry_at)
        t = self._next(t)
        self._set_status(sub, t, "past_due")
        sub.quiet_from = t
        self._tick()
        t = retry_at + int(r() * 600)
        if t > self.limit:
            return False
        if r() < 0.6:
            charge, t = self._pay_invoice(inv, pi, t, _AUTOMATIC)
            t = self._next(t)
            self._set_status(sub, t, "active")
            sub.quiet_from = t
            self._tick()
            self._after_sale(charge, t, inv)
            return True
        self._fail_invoice_payment(inv, pi, t, None)
        self._tick()
        # Retries exhausted: the subscription is canceled (the customer's settings choose this path).
        t += 4 * _DAY + int(r() * 3600)
        if t <= self.limit:
            sub.status, sub.canceled_at, sub.ended_at, sub.cancel_reason = "canceled", t, t, "payment_failed"
            self._emit("customer.subscription.deleted", t, self._subscription_obj(sub), _AUTOMATIC)
            self._tick()
        return False

    def _set_status(self, sub: _Subscription, t: int, status: str) -> None:
        previous = {"status": sub.status}
        sub.status = status
        self._emit("customer.subscription.updated", t, self._subscription_obj(sub), _AUTOMATIC, previous)

    def _cancel(self, sub: _Subscription) -> None:
        """The customer cancels during the period; the subscription ends at the period's end."""
        r = self.random
        length = sub.period_end - sub.period_start
        t = max(sub.period_start + int(length * (0.1 + 0.8 * r())), sub.quiet_from + 60)
        if t > self.limit:
            return
        previous: JSON = {
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        }
        sub.cancel_at_period_end, sub.cancel_at, sub.canceled_at = True, sub.period_end, t
        sub.cancel_reason = "cancellation_requested"
        sub.feedback = ("too_expensive", "unused", "switched_service", "missing_features", None)[int(r() * 5)]
        self._emit(
            "customer.subscription.updated",
            t,
            self._subscription_obj(sub),
            self._request(idempotent=False),
            previous,
        )
        self._tick()
        if sub.period_end <= self.limit:
            sub.status, sub.ended_at = "canceled", sub.period_end
            deleted = self._subscription_obj(sub)
            self._emit("customer.subscription.deleted", sub.period_end, deleted, _AUTOMATIC)
            self._tick()

    def _change_plan(self, sub: _Subscription) -> None:
        """Upgrade mid-period (Starter -> Pro -> Team, then more Team seats); takes effect at renewal."""
        r = self.random
        t = sub.period_start + int((sub.period_end - sub.period_start) * (0.2 + 0.6 * r()))
        t = max(t, sub.quiet_from + 60)
        if t > self.limit:
            return
        previous: JSON = {"items": self._items_obj(sub)}
        name = sub.price.name
        if name == "Starter plan":
            sub.price, sub.quantity = self._price(1, sub.price.currency), 1
        elif name == "Pro plan":
            sub.price, sub.quantity = self._price(2, sub.price.currency), 3
        else:
            sub.quantity += 1 + int(r() * 3)
        self._emit("customer.subscription.updated", t, self._subscription_obj(sub), self._request(), previous)
        sub.quiet_from = t
        self._tick()

    # -- invoices and payments ----------------------------------------------------------------------

    def _new_invoice(
        self, sub: _Subscription, t: int, reason: str, line_period: tuple[int, int], period: tuple[int, int]
    ) -> _Invoice:
        return _Invoice(
            id=self._id("in_"),
            line_id=self._id("il_"),
            customer=sub.customer,
            subscription=sub,
            price=sub.price,
            quantity=sub.quantity,
            billing_reason=reason,
            created=t,
            period_start=period[0],
            period_end=period[1],
            line_period=line_period,
        )

    def _finalize(self, inv: _Invoice, t: int, request: _Request) -> _PaymentIntent:
        c = inv.customer
        c.invoice_seq += 1
        creation = inv.billing_reason == "subscription_create"
        description = "Subscription creation" if creation else "Subscription update"
        pi = self._new_pi(c, inv.amount, inv.price.currency, description, inv.id, t)
        inv.status, inv.number, inv.finalized_at, inv.payment_intent = (
            "open",
            f"{c.invoice_prefix}-{c.invoice_seq:04d}",
            t,
            pi.id,
        )
        self._emit("invoice.finalized", t, self._invoice_obj(inv), request)
        return pi

    def _pay_invoice(
        self,
        inv: _Invoice,
        pi: _PaymentIntent,
        t: int,
        request: _Request,
    ) -> tuple[_Charge, int]:
        billing_email = inv.customer.email if self.random() < 0.5 else None
        charge, t = self._succeed_charge(pi, t, request, billing_email)
        t = self._next(t)
        inv.status, inv.paid_at, inv.charge, inv.next_payment_attempt = "paid", t, charge.id, None
        inv.attempt_count += 1
        self._emit("invoice.paid", t, self._invoice_obj(inv), request)
        t = self._next(t)
        self._emit("invoice.payment_succeeded", t, self._invoice_obj(inv), request)
        return charge, t

    def _fail_invoice_payment(self, inv: _Invoice, pi: _PaymentIntent, t: int, retry_at: int | None) -> None:
        charge, t = self._fail_charge(pi, t, _AUTOMATIC, billing_email=None)
        t = self._next(t)
        inv.attempt_count += 1
        inv.charge, inv.next_payment_attempt = charge.id, retry_at
        self._emit("invoice.payment_failed", t, self._invoice_obj(inv), _AUTOMATIC)

    def _new_pi(
        self, c: _Customer, amount: int, currency: str, description: str, invoice: str | None, t: int
    ) -> _PaymentIntent:
        r = self.random
        metadata: dict[str, str] = {}
        if c.amplitude_id is not None and r() < 0.6:
            metadata["amplitude_id"] = c.amplitude_id
        if r() < c.user_id_rate:
            metadata["user_id"] = c.user_id
        pi_id = self._id("pi_")
        return _PaymentIntent(
            id=pi_id,
            customer=c,
            amount=amount,
            currency=currency,
            description=description,
            receipt_email=c.email if r() < 0.85 else None,
            metadata=metadata,
            invoice=invoice,
            created=t,
            client_secret=f"{pi_id}_secret_{self._id('', 25)}",
        )

    def _succeed_charge(
        self, pi: _PaymentIntent, t: int, request: _Request, billing_email: str | None
    ) -> tuple[_Charge, int]:
        charge = _Charge(self._id("ch_"), pi, t, True, billing_email, self._id("txn_"))
        pi.status, pi.amount_received, pi.latest_charge, pi.last_error = (
            "succeeded",
            pi.amount,
            charge.id,
            None,
        )
        self._emit("charge.succeeded", t, self._charge_obj(charge), request)
        t = self._next(t)
        self._emit("payment_intent.succeeded", t, self._pi_obj(pi), request)
        return charge, t

    def _fail_charge(
        self, pi: _PaymentIntent, t: int, request: _Request, billing_email: str | None
    ) -> tuple[_Charge, int]:
        decline = _DECLINES[int(self.random() * len(_DECLINES))]
        charge = _Charge(self._id("ch_"), pi, t, False, billing_email, None, decline)
        pi.status, pi.latest_charge, pi.last_error = (
            "requires_payment_method",
            charge.id,
            (charge.id, *decline),
        )
        self._emit("charge.failed", t, self._charge_obj(charge), request)
        t = self._next(t)
        self._emit("payment_intent.payment_failed", t, self._pi_obj(pi), request)
        return charge, t

    # -- what happens after a sale: refunds, disputes, credit notes ---------------------------------

    def _after_sale(self, charge: _Charge, t: int, inv: _Invoice | None = None) -> None:
        x = self.random()
        if x < 0.006:
            self._dispute(charge, t + _DAY * (3 + int(self.random() * 40)))
        elif x < 0.056:
            self._refunds(charge, t)
        elif inv is not None and x < 0.086:
            self._credit_note(inv, t + 3600 + int(self.random() * 15 * _DAY))

    def _partial(self, amount: int, currency: str) -> int:
        step = _amount_step(currency)
        part = amount * (10 + int(self.random() * 60)) // 100 // step * step
        return part if 0 < part < amount else 0

    def _refunds(self, charge: _Charge, t: int) -> None:
        r = self.random
        pi = charge.pi
        t += 3600 + int(r() * 20 * _DAY)
        if t > self.limit:
            return
        first = pi.amount if r() < 0.55 else self._partial(pi.amount, pi.currency) or pi.amount
        self._refund(charge, t, first)
        remaining = pi.amount - first
        if remaining and r() < 0.4:
            t += 3600 + int(r() * 10 * _DAY)
            if t <= self.limit:
                second = remaining if r() < 0.5 else self._partial(remaining, pi.currency) or remaining
                self._refund(charge, t, second)

    def _refund(self, charge: _Charge, t: int, amount: int) -> None:
        pi = charge.pi
        previous: JSON = {"amount_refunded": charge.amount_refunded}
        charge.amount_refunded += amount
        if charge.amount_refunded == pi.amount:
            previous["refunded"] = False
        request = self._request()
        self._emit("charge.refunded", t, self._charge_obj(charge), request, previous)
        refund: JSON = {
            "id": self._id("re_"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": self._id("txn_"),
            "charge": charge.id,
            "created": t,
            "currency": pi.currency,
            "destination_details": {
                "card": {"reference_status": "pending", "type": "refund"},
                "type": "card",
            },
            "metadata": {},
            "payment_intent": pi.id,
            "reason": _REFUND_REASONS[int(self.random() * len(_REFUND_REASONS))],
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        self._emit("refund.created", self._next(t), refund, request)
        self._tick()

    def _dispute(self, charge: _Charge, t: int) -> None:
        if t > self.limit:
            return
        pi = charge.pi
        charge.disputed = True
        dispute: JSON = {
            "id": self._id("dp_"),
            "object": "dispute",
            "amount": pi.amount,
            "balance_transactions": [],
            "charge": charge.id,
            "created": t,
            "currency": pi.currency,
            "evidence": dict.fromkeys(_EVIDENCE_FIELDS),
            "evidence_details": {
                "due_by": t + 14 * _DAY,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": pi.id,
            "payment_method_details": {
                "card": {
                    "brand": pi.customer.brand,
                    "case_type": "chargeback",
                    "network_reason_code": "10.4",
                },
                "type": "card",
            },
            "reason": _DISPUTE_REASONS[int(self.random() * len(_DISPUTE_REASONS))],
            "status": "needs_response",
        }
        self._emit("charge.dispute.created", t, dispute, _AUTOMATIC)
        self._tick()

    def _credit_note(self, inv: _Invoice, t: int) -> None:
        """A post-payment credit note settled outside Stripe (no refund object, no balance change)."""
        if t > self.limit:
            return
        r = self.random
        amount = inv.amount if r() < 0.5 else self._partial(inv.amount, inv.price.currency) or inv.amount
        cn_id = self._id("cn_")
        note: JSON = {
            "id": cn_id,
            "object": "credit_note",
            "amount": amount,
            "amount_shipping": 0,
            "created": t,
            "currency": inv.price.currency,
            "customer": inv.customer.id,
            "customer_balance_transaction": None,
            "discount_amount": 0,
            "discount_amounts": [],
            "effective_at": t,
            "invoice": inv.id,
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": self._id("cnli_"),
                        "object": "credit_note_line_item",
                        "amount": amount,
                        "amount_excluding_tax": amount,
                        "description": inv.price.name,
                        "discount_amount": 0,
                        "discount_amounts": [],
                        "invoice_line_item": inv.line_id,
                        "livemode": False,
                        "quantity": 1,
                        "tax_amounts": [],
                        "tax_rates": [],
                        "type": "invoice_line_item",
                        "unit_amount": None,
                        "unit_amount_decimal": None,
                        "unit_amount_excluding_tax": str(amount),
                    }
                ],
                "has_more": False,
                "url": f"/v1/credit_notes/{cn_id}/lines",
            },
            "livemode": False,
            "memo": "Service credit",
            "metadata": {},
            "number": f"{inv.number}-CN-01",
            "out_of_band_amount": amount,
            "pdf": f"https://pay.stripe.com/credit_notes/{cn_id}/pdf",
            "reason": ("product_unsatisfactory", "order_change", "duplicate")[int(r() * 3)],
            "refund": None,
            "shipping_cost": None,
            "status": "issued",
            "subtotal": amount,
            "subtotal_excluding_tax": amount,
            "tax_amounts": [],
            "total": amount,
            "total_excluding_tax": amount,
            "type": "post_payment",
            "voided_at": None,
        }
        self._emit("credit_note.created", t, note, self._request(idempotent=False))
        self._tick()

    # -- renderers: state -> fresh Stripe-shaped dicts ----------------------------------------------

    def _customer_obj(self, c: _Customer) -> JSON:
        return {
            "id": c.id,
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": c.created,
            "currency": c.currency if c.invoice_seq else None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": c.email,
            "invoice_prefix": c.invoice_prefix,
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": c.default_pm,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": {"user_id": c.user_id} if c.user_id_rate else {},
            "name": c.name,
            "next_invoice_sequence": c.invoice_seq + 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }

    def _payment_method_obj(self, c: _Customer, t: int) -> JSON:
        return {
            "id": c.pm_id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": self._billing_details(c, c.email),
            "card": {
                "brand": c.brand,
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "pass",
                },
                "country": c.country,
                "display_brand": c.brand,
                "exp_month": c.exp_month,
                "exp_year": c.exp_year,
                "fingerprint": c.fingerprint,
                "funding": "credit",
                "generated_from": None,
                "last4": c.last4,
                "networks": {"available": [c.brand], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": t,
            "customer": c.id,
            "livemode": False,
            "metadata": {},
            "type": "card",
        }

    @staticmethod
    def _billing_details(c: _Customer, email: str | None) -> JSON:
        return {
            "address": {
                "city": None,
                "country": c.country,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": email,
            "name": c.name,
            "phone": None,
        }

    def _charge_obj(self, ch: _Charge) -> JSON:
        pi = ch.pi
        c = pi.customer
        ok = ch.succeeded
        decline = ch.decline
        return {
            "id": ch.id,
            "object": "charge",
            "amount": pi.amount,
            "amount_captured": pi.amount if ok else 0,
            "amount_refunded": ch.amount_refunded,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": ch.balance_transaction,
            "billing_details": self._billing_details(c, ch.billing_email),
            "calculated_statement_descriptor": "REVLENS DEMO",
            "captured": ok,
            "created": ch.created,
            "currency": pi.currency,
            "customer": c.id,
            "description": pi.description,
            "disputed": ch.disputed,
            "failure_balance_transaction": None,
            "failure_code": None if decline is None else "card_declined",
            "failure_message": None if decline is None else decline[1],
            "fraud_details": {},
            "invoice": pi.invoice,
            "livemode": False,
            # Charges carry the metadata of the payment intent that created them.
            "metadata": dict(pi.metadata),
            "on_behalf_of": None,
            "outcome": {
                "network_status": "approved_by_network" if ok else "declined_by_network",
                "reason": None if decline is None else decline[0],
                "risk_level": "normal",
                "risk_score": 20 + ch.created % 30,
                "seller_message": "Payment complete." if ok else "The bank did not return further details.",
                "type": "authorized" if ok else "issuer_declined",
            },
            "paid": ok,
            "payment_intent": pi.id,
            "payment_method": c.pm_id,
            "payment_method_details": {
                "card": {
                    "amount_authorized": pi.amount if ok else None,
                    "brand": c.brand,
                    "checks": {
                        "address_line1_check": None,
                        "address_postal_code_check": None,
                        "cvc_check": "pass",
                    },
                    "country": c.country,
                    "exp_month": c.exp_month,
                    "exp_year": c.exp_year,
                    "fingerprint": c.fingerprint,
                    "funding": "credit",
                    "last4": c.last4,
                    "network": c.brand,
                    "three_d_secure": None,
                    "wallet": None,
                },
                "type": "card",
            },
            "receipt_email": pi.receipt_email,
            "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{ch.id}" if ok else None,
            "refunded": ok and ch.amount_refunded == pi.amount,
            "review": None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "succeeded" if ok else "failed",
            "transfer_data": None,
            "transfer_group": None,
        }

    def _pi_obj(self, pi: _PaymentIntent) -> JSON:
        error = pi.last_error
        return {
            "id": pi.id,
            "object": "payment_intent",
            "amount": pi.amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": pi.amount_received,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": pi.client_secret,
            "confirmation_method": "automatic",
            "created": pi.created,
            "currency": pi.currency,
            "customer": pi.customer.id,
            "description": pi.description,
            "invoice": pi.invoice,
            "last_payment_error": None
            if error is None
            else {
                "charge": error[0],
                "code": "card_declined",
                "decline_code": error[1],
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "message": error[2],
                "type": "card_error",
            },
            "latest_charge": pi.latest_charge,
            "livemode": False,
            "metadata": dict(pi.metadata),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": pi.customer.pm_id if error is None else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": pi.receipt_email,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": pi.status,
            "transfer_data": None,
            "transfer_group": None,
        }

    def _session_obj(
        self,
        c: _Customer,
        pi: _PaymentIntent,
        price: _Price,
        quantity: int,
        created: int,
    ) -> JSON:
        amount = price.unit_amount * quantity
        return {
            "id": self._id("cs_"),
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": amount,
            "amount_total": amount,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": "https://shop.example.com/cancel",
            # Apps pass their own user id here when they know it.
            "client_reference_id": pi.metadata.get("user_id"),
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": created,
            "currency": pi.currency,
            "currency_conversion": None,
            "custom_fields": [],
            "customer": c.id,
            "customer_creation": None,
            "customer_details": {
                "address": None,
                "email": c.email,
                "name": c.name,
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
            "customer_email": None,
            "expires_at": created + _DAY,
            "invoice": None,
            "invoice_creation": None,
            "livemode": False,
            "locale": None,
            "metadata": {},
            "mode": "payment",
            "payment_intent": pi.id,
            "payment_link": None,
            "payment_method_collection": "if_required",
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "payment_status": "paid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_details": None,
            "shipping_options": [],
            "status": "complete",
            "submit_type": "pay",
            "subscription": None,
            "success_url": "https://shop.example.com/success",
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": None,
        }

    @staticmethod
    def _price_obj(p: _Price) -> JSON:
        return {
            "id": p.id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": p.created,
            "currency": p.currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": p.product_id,
            "recurring": {
                "aggregate_usage": None,
                "interval": "month",
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
            if p.recurring
            else None,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if p.recurring else "one_time",
            "unit_amount": p.unit_amount,
            "unit_amount_decimal": str(p.unit_amount),
        }

    @staticmethod
    def _plan_obj(p: _Price) -> JSON:
        return {
            "id": p.id,
            "object": "plan",
            "active": True,
            "aggregate_usage": None,
            "amount": p.unit_amount,
            "amount_decimal": str(p.unit_amount),
            "billing_scheme": "per_unit",
            "created": p.created,
            "currency": p.currency,
            "interval": "month",
            "interval_count": 1,
            "livemode": False,
            "metadata": {},
            "meter": None,
            "nickname": None,
            "product": p.product_id,
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }

    def _items_obj(self, sub: _Subscription) -> JSON:
        return {
            "object": "list",
            "data": [
                {
                    "id": sub.item_id,
                    "object": "subscription_item",
                    "billing_thresholds": None,
                    "created": sub.created,
                    "discounts": [],
                    "metadata": {},
                    "plan": self._plan_obj(sub.price),
                    "price": self._price_obj(sub.price),
                    "quantity": sub.quantity,
                    "subscription": sub.id,
                    "tax_rates": [],
                }
            ],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub.id}",
        }

    def _subscription_obj(self, sub: _Subscription) -> JSON:
        return {
            "id": sub.id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"enabled": False, "liability": None},
            "billing_cycle_anchor": sub.created,
            "billing_cycle_anchor_config": None,
            "billing_thresholds": None,
            "cancel_at": sub.cancel_at,
            "cancel_at_period_end": sub.cancel_at_period_end,
            "canceled_at": sub.canceled_at,
            "cancellation_details": {"comment": None, "feedback": sub.feedback, "reason": sub.cancel_reason},
            "collection_method": "charge_automatically",
            "created": sub.created,
            "currency": sub.price.currency,
            "current_period_end": sub.period_end,
            "current_period_start": sub.period_start,
            "customer": sub.customer.id,
            "days_until_due": None,
            "default_payment_method": sub.customer.pm_id,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discount": None,
            "discounts": [],
            "ended_at": sub.ended_at,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": self._items_obj(sub),
            "latest_invoice": sub.latest_invoice,
            "livemode": False,
            "metadata": dict(sub.metadata),
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": sub.created,
            "status": sub.status,
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        }

    def _invoice_obj(self, inv: _Invoice) -> JSON:
        c = inv.customer
        sub = inv.subscription
        price = inv.price
        amount = inv.amount
        paid = inv.status == "paid"
        amount_paid = amount if paid else 0
        finalized = inv.finalized_at is not None
        return {
            "id": inv.id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Revlens Demo Inc.",
            "account_tax_ids": None,
            "amount_due": amount,
            "amount_paid": amount_paid,
            "amount_remaining": amount - amount_paid,
            "amount_shipping": 0,
            "application": None,
            "application_fee_amount": None,
            "attempt_count": inv.attempt_count,
            "attempted": inv.attempt_count > 0,
            "auto_advance": not paid,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_reason": inv.billing_reason,
            "charge": inv.charge,
            "collection_method": "charge_automatically",
            "created": inv.created,
            "currency": price.currency,
            "custom_fields": None,
            "customer": c.id,
            "customer_address": None,
            "customer_email": c.email,
            "customer_name": c.name,
            "customer_phone": None,
            "customer_shipping": None,
            "customer_tax_exempt": "none",
            "customer_tax_ids": [],
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discount": None,
            "discounts": [],
            "due_date": None,
            "effective_at": inv.finalized_at,
            "ending_balance": 0 if finalized else None,
            "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": f"https://invoice.stripe.com/i/{inv.id}" if finalized else None,
            "invoice_pdf": f"https://pay.stripe.com/invoice/{inv.id}/pdf" if finalized else None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": inv.line_id,
                        "object": "line_item",
                        "amount": amount,
                        "amount_excluding_tax": amount,
                        "currency": price.currency,
                        "description": price.name,
                        "discount_amounts": [],
                        "discountable": True,
                        "discounts": [],
                        "invoice": inv.id,
                        "invoice_item": None,
                        "livemode": False,
                        "metadata": {},
                        "period": {"end": inv.line_period[1], "start": inv.line_period[0]},
                        "plan": self._plan_obj(price),
                        "price": self._price_obj(price),
                        "proration": False,
                        "proration_details": {"credited_items": None},
                        "quantity": inv.quantity,
                        "subscription": None if sub is None else sub.id,
                        "subscription_item": None if sub is None else sub.item_id,
                        "tax_amounts": [],
                        "tax_rates": [],
                        "type": "subscription",
                        "unit_amount_excluding_tax": str(price.unit_amount),
                    }
                ],
                "has_more": False,
                "url": f"/v1/invoices/{inv.id}/lines",
            },
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": inv.next_payment_attempt,
            "number": inv.number,
            "on_behalf_of": None,
            "paid": paid,
            "paid_out_of_band": False,
            "payment_intent": inv.payment_intent,
            "payment_settings": {
                "default_mandate": None,
                "payment_method_options": None,
                "payment_method_types": None,
            },
            "period_end": inv.period_end,
            "period_start": inv.period_start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "quote": None,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": None,
            "status": inv.status,
            "status_transitions": {
                "finalized_at": inv.finalized_at,
                "marked_uncollectible_at": None,
                "paid_at": inv.paid_at,
                "voided_at": None,
            },
            "subscription": None if sub is None else sub.id,
            "subscription_details": {"metadata": None if sub is None else dict(sub.metadata)},
            "subtotal": amount,
            "subtotal_excluding_tax": amount,
            "tax": None,
            "test_clock": None,
            "total": amount,
            "total_discount_amounts": [],
            "total_excluding_tax": amount,
            "total_tax_amounts": [],
            "transfer_data": None,
            "webhooks_delivered_at": None,
            "automatically_finalizes_at": None,
        }


_EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
    "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt", "refund_policy",
    "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation",
    "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
    "shipping_tracking_number", "uncategorized_file", "uncategorized_text",
)  # fmt: skip


def _validate(config: DemoConfig) -> None:
    if config.events < 0:
        raise ValueError(f"events must be >= 0, got {config.events}")
    if config.days < 1:
        raise ValueError(f"days must be >= 1, got {config.days}")
    if not 0.0 <= config.duplicate_rate <= 1.0:
        raise ValueError(f"duplicate_rate must be within [0, 1], got {config.duplicate_rate}")
    if not config.currencies:
        raise ValueError("currencies must not be empty")
    for cur in config.currencies:
        if len(cur) != 3 or not cur.isascii() or not cur.isalpha() or cur != cur.lower():
            raise ValueError(f"currencies must be lowercase ISO 4217 codes, got {cur!r}")
