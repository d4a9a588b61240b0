import time

import pytest
import stripe

from revlens.webhook.signature import SignatureError, compute_signature, sign, verify

BODY = b'{"id": "evt_1", "object": "event"}'
SECRET = "whsec_test_secret"


def test_signature_matches_stripes_own_verifier() -> None:
    header = sign(BODY, SECRET)
    # The official library accepts what we produce, so tests and the demo sign exactly as Stripe does.
    assert stripe.WebhookSignature.verify_header(BODY.decode(), header, SECRET, 300)
    verify(BODY, header, [SECRET])


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(BODY, SECRET, 1700000000) == expected
    assert sign(BODY, SECRET, 1700000000) == f"t=1700000000,v1={expected}"


def test_rolling_secrets_several_v1_signatures() -> None:
    header = sign(BODY, ["whsec_old_secret", "whsec_new_secret"])
    verify(BODY, header, ["whsec_new_secret"])
    verify(BODY, header, ["whsec_old_secret"])
    # An endpoint configured with both secrets accepts a delivery signed by either one.
    verify(BODY, sign(BODY, "whsec_new_secret"), ["whsec_old_secret", "whsec_new_secret"])


def test_v0_signatures_are_ignored() -> None:
    t = int(time.time())
    header = f"t={t},v0={compute_signature(BODY, SECRET, t)}"
    with pytest.raises(SignatureError, match="expected scheme"):
        verify(BODY, header, [SECRET])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "Unable to extract"),
        ("t=abc,v1=00", "Unable to extract"),
    ],
)
def test_malformed_headers(header: str | None, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(BODY, header, [SECRET])


def test_wrong_secret_and_tampered_body() -> None:
    header = sign(BODY, SECRET)
    with pytest.raises(SignatureError, match="No signatures found matching"):
        verify(BODY, header, ["whsec_other"])
    with pytest.raises(SignatureError, match="No signatures found matching"):
        verify(BODY + b" ", header, [SECRET])


def test_stale_timestamp_rejected_future_accepted() -> None:
    now = int(time.time())
    with pytest.raises(SignatureError, match="tolerance"):
        verify(BODY, sign(BODY, SECRET, now - 301), [SECRET])
    verify(BODY, sign(BODY, SECRET, now - 290), [SECRET])
    verify(BODY, sign(BODY, SECRET, now + 3600), [SECRET])  # Stripe's library only rejects old ones


def test_non_utf8_body() -> None:
    with pytest.raises(SignatureError, match="UTF-8"):
        verify(b"\xff\xfe", sign(b"\xff\xfe", SECRET), [SECRET])
