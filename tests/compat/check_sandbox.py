#!/usr/bin/env python3
"""Proves `probe sandbox` is a faithful fake, using the vendors' OFFICIAL client libraries.

    python tests/compat/check_sandbox.py STATE_DIR

STATE_DIR is the `--state-dir` of a running `probe sandbox`; its `sandbox.json` manifest
says where everything is. Apple's `app-store-server-library` calls the App Store Server
API fake and verifies everything it signs; Google's `google-auth` gets an access token
from the OAuth2 fake and uses it on the Play Developer API fake.

If a check fails, the fake disagrees with what the real vendor sends or accepts: fix the
fake, not the check. Prints one line per check passed, a `FAIL` line with the reason
otherwise, and a closing `compat: N passed, N failed` line. Exit status 0 only when every
check passed. Tokens, keys and purchase tokens are never printed.
"""

from __future__ import annotations

import datetime
import enum
import json
import sys
import time
import typing
from pathlib import Path

try:
    import attr
    import jwt
    import requests
    from appstoreserverlibrary.api_client import (
        APIError,
        APIException,
        AppStoreServerAPIClient,
        GetTransactionHistoryVersion,
    )
    from appstoreserverlibrary.models.CheckTestNotificationResponse import (
        CheckTestNotificationResponse,
    )
    from appstoreserverlibrary.models.Environment import Environment
    from appstoreserverlibrary.models.HistoryResponse import HistoryResponse
    from appstoreserverlibrary.models.JWSRenewalInfoDecodedPayload import (
        JWSRenewalInfoDecodedPayload,
    )
    from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
        JWSTransactionDecodedPayload,
    )
    from appstoreserverlibrary.models.NotificationTypeV2 import NotificationTypeV2
    from appstoreserverlibrary.models.ResponseBodyV2DecodedPayload import (
        ResponseBodyV2DecodedPayload,
    )
    from appstoreserverlibrary.models.SendAttemptResult import SendAttemptResult
    from appstoreserverlibrary.models.SendTestNotificationResponse import (
        SendTestNotificationResponse,
    )
    from appstoreserverlibrary.models.Status import Status
    from appstoreserverlibrary.models.StatusResponse import StatusResponse
    from appstoreserverlibrary.models.TransactionHistoryRequest import (
        Order,
        ProductType,
        TransactionHistoryRequest,
    )
    from appstoreserverlibrary.models.TransactionInfoResponse import TransactionInfoResponse
    from appstoreserverlibrary.models.Type import Type as TransactionType
    from appstoreserverlibrary.signed_data_verifier import (
        SignedDataVerifier,
        VerificationException,
    )
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2 import service_account
except ImportError as e:  # pragma: no cover - environment problem, not a fidelity one
    print(
        f"error: {e}. Install tests/compat/requirements.txt (see .ci/compat.sh).",
        file=sys.stderr,
    )
    sys.exit(2)

PLAY_SCOPE = "https://www.googleapis.com/auth/androidpublisher"
# Apple's `type` for each TransactionHistoryRequest.ProductType filter.
PRODUCT_TYPE_OF = {
    ProductType.AUTO_RENEWABLE: TransactionType.AUTO_RENEWABLE_SUBSCRIPTION,
    ProductType.NON_RENEWABLE: TransactionType.NON_RENEWING_SUBSCRIPTION,
    ProductType.CONSUMABLE: TransactionType.CONSUMABLE,
    ProductType.NON_CONSUMABLE: TransactionType.NON_CONSUMABLE,
}


class CheckFailed(Exception):
    """A fidelity failure: the fake is not what the official library expects."""


# ---------------------------------------------------------------------------------------
# Output: one line per check, secrets never printed.

SECRETS: set[str] = set()


def secret(value):
    """Remembers `value` (and its parts) so that no message ever shows it."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and len(value) >= 8:
        SECRETS.add(value)
        for part in value.split("."):  # JWS / JWT segments
            if len(part) >= 16:
                SECRETS.add(part)
    return value


def redact(text: str) -> str:
    for s in sorted(SECRETS, key=len, reverse=True):
        text = text.replace(s, "<redacted>")
    return text


def describe(exc: BaseException) -> str:
    """The exception and its causes (e.g. OpenSSL's complaint behind a VerificationException)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, APIException):
            msg = (
                f"APIException: HTTP {exc.http_status_code}, errorCode {exc.raw_api_error}, "
                f"errorMessage {exc.error_message!r}"
            )
        elif isinstance(exc, CheckFailed):
            msg = str(exc)
        else:
            msg = f"{type(exc).__name__}: {exc}"
        parts.append(msg)
        exc = exc.__cause__ or exc.__context__
    return redact(" <- caused by ".join(parts))


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name: str, fn, *args):
        """Runs one check; returns its result, or None when it failed."""
        try:
            result = fn(*args)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none hidden
            self.failed += 1
            print(f"FAIL  {name}: {describe(e)}", flush=True)
            return None
        self.passed += 1
        print(f"ok    {name}", flush=True)
        return result

    def skip(self, name: str, why: str):
        self.failed += 1
        print(f"FAIL  {name}: not run, {why}", flush=True)


def expect(cond: bool, message: str):
    if not cond:
        raise CheckFailed(message)


def expect_eq(what: str, got, want):
    if got != want:
        raise CheckFailed(f"{what} is {got!r}, expected {want!r}")


# ---------------------------------------------------------------------------------------
# Field-level fidelity: the raw JSON must match the library's models exactly. The library
# itself is lenient (cattrs turns "9990" into 9990, unknown enum values into None with the
# raw value kept, unknown keys are dropped), so a fake could pass it while differing from
# Apple. This walks the raw JSON against the model's type hints instead.


def _unwrap_optional(t):
    if typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return t


def _json_matches(value, t, path: str, problems: list[str]):
    t = _unwrap_optional(t)
    origin = typing.get_origin(t)
    if origin in (list, typing.List):
        if not isinstance(value, list):
            problems.append(f"{path} is {type(value).__name__}, expected a JSON array")
            return
        (elem,) = typing.get_args(t) or (typing.Any,)
        for i, v in enumerate(value):
            _json_matches(v, elem, f"{path}[{i}]", problems)
        return
    if isinstance(t, type) and attr.has(t):
        if not isinstance(value, dict):
            problems.append(f"{path} is {type(value).__name__}, expected a JSON object")
            return
        model_problems(value, t, path, problems)
        return
    if isinstance(t, type) and issubclass(t, enum.Enum):
        if value not in [m.value for m in t]:
            problems.append(f"{path} = {value!r} is not a known {t.__name__} value")
        return
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t is str:
        ok = isinstance(value, str)
    else:
        return  # a type this walker does not model (Any, UUID, ...): the library decides
    if not ok:
        problems.append(f"{path} is JSON {type(value).__name__}, the model says {t.__name__}")


def model_problems(raw: dict, cls, path: str, problems: list[str]) -> list[str]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attr.fields(cls)}
    for key, value in raw.items():
        where = f"{path}.{key}"
        field = fields.get(key)
        if field is None or field.metadata.get("typeOfField") == "raw":
            problems.append(f"{where} is not a field of {cls.__name__} (typo or invented field?)")
            continue
        if value is None:
            continue
        if field.metadata.get("typeOfField") == "main":
            # An enum with a raw twin: the raw twin's hint is the JSON type, the enum the values.
            raw_name = field.metadata["correspondingFieldName"]
            _json_matches(value, hints[raw_name], where, problems)
            _json_matches(value, hints[key], where, problems)
        else:
            _json_matches(value, hints[key], where, problems)
    return problems


def expect_model(raw, cls, what: str):
    expect(isinstance(raw, dict), f"{what} is not a JSON object")
    problems = model_problems(raw, cls, what, [])
    if problems:
        raise CheckFailed(f"{what} differs from {cls.__name__}: " + "; ".join(problems))


def jws_payload(jws: str) -> dict:
    """The payload of a JWS that the verifier has already accepted."""
    return jwt.decode(jws, options={"verify_signature": False})


# ---------------------------------------------------------------------------------------
# Apple


class RecordingClient(AppStoreServerAPIClient):
    """Apple's client, unchanged, keeping each raw response for field-level checks."""

    last_response: requests.Response | None = None

    def _execute_request(self, method, url, params, headers, json, data):
        self.last_response = super()._execute_request(method, url, params, headers, json, data)
        return self.last_response

    def last_json(self):
        return self.last_response.json()


def apple_client(a: dict, signing_key: bytes) -> RecordingClient:
    client = RecordingClient(
        signing_key=signing_key,
        key_id=a["key_id"],
        issuer_id=a["issuer_id"],
        bundle_id=a["bundle_id"],
        environment=Environment.SANDBOX,
    )
    # The library hard-codes Apple's sandbox host in `_base_url` (set in the constructor,
    # read by `_get_full_url`); only the host differs, paths are Apple's.
    expect(
        hasattr(client, "_base_url"),
        "AppStoreServerAPIClient has no _base_url: the library changed how it builds URLs",
    )
    client._base_url = a["base_url"].rstrip("/")
    return client


def throwaway_root_der() -> bytes:
    """A self-signed CA that signed nothing the sandbox serves."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "iap-probe compat throwaway root"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def load_root_der(path: str) -> bytes:
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.DER)


def run_apple(r: Runner, m: dict):
    a = m["apple"]
    ios = m["fixtures"]["ios"]
    expect(len(ios) > 0, "manifest has no fixtures.ios")
    sub = next((f for f in ios if f.get("type") == "Auto-Renewable Subscription"), None)
    if sub is None:
        sub = ios[0]
    signing_key = Path(a["private_key_file"]).read_bytes()
    secret(signing_key)

    client = r.check("apple: AppStoreServerAPIClient built, pointed at the fake", apple_client, a, signing_key)
    root = r.check("apple: sandbox root CA loads", load_root_der, a["root_ca_file"])
    if client is None or root is None:
        r.skip("apple: API and verification checks", "the client or the root CA did not load")
        return

    def new_verifier(roots):
        return SignedDataVerifier(
            roots,
            enable_online_checks=False,
            environment=Environment.SANDBOX,
            bundle_id=a["bundle_id"],
            app_apple_id=int(a["app_apple_id"]),
        )

    verifier = new_verifier([root])
    signed: list[tuple[str, str, str]] = []  # (what, kind, jws) for the negative check

    def verify_transaction(what: str, jws: str, fixture: dict | None):
        secret(jws)
        tx = verifier.verify_and_decode_signed_transaction(jws)
        expect_model(jws_payload(jws), JWSTransactionDecodedPayload, f"{what} payload")
        expect_eq(f"{what} bundleId", tx.bundleId, a["bundle_id"])
        expect_eq(f"{what} environment", tx.environment, Environment.SANDBOX)
        expect(tx.type is not None, f"{what} type {tx.rawType!r} is not an Apple product type")
        expect(isinstance(tx.signedDate, int) and tx.signedDate > 0, f"{what} has no signedDate")
        if fixture is not None:
            expect_eq(f"{what} transactionId", tx.transactionId, fixture["transaction_id"])
            expect_eq(f"{what} productId", tx.productId, fixture["product_id"])
        signed.append((what, "transaction", jws))
        return tx

    # a. get_transaction_info + verify every transaction
    for f in ios:
        tid = f["transaction_id"]

        def transaction_info(f=f, tid=tid):
            resp = client.get_transaction_info(tid)
            expect_model(client.last_json(), TransactionInfoResponse, "TransactionInfoResponse")
            expect(bool(resp.signedTransactionInfo), "signedTransactionInfo is empty")
            verify_transaction(f"transaction {tid}", resp.signedTransactionInfo, f)

        r.check(
            f"apple: get_transaction_info({tid}) -> verified, transactionId/productId/bundleId/Sandbox match",
            transaction_info,
        )

    # get_transaction_history v2, as Apple's README calls it
    def history(request: TransactionHistoryRequest, want_ids: list[str]):
        resp = client.get_transaction_history(
            sub["transaction_id"], None, request, GetTransactionHistoryVersion.V2
        )
        expect_model(client.last_json(), HistoryResponse, "HistoryResponse")
        expect_eq("history bundleId", resp.bundleId, a["bundle_id"])
        expect_eq("history appAppleId", resp.appAppleId, int(a["app_apple_id"]))
        expect_eq("history environment", resp.environment, Environment.SANDBOX)
        expect(isinstance(resp.hasMore, bool), "history hasMore is missing")
        expect(bool(resp.revision), "history revision is missing")
        txs = [
            verify_transaction(f"history transaction #{i}", jws, None)
            for i, jws in enumerate(resp.signedTransactions or [])
        ]
        got = [t.transactionId for t in txs]
        expect_eq("history transactionIds", sorted(got), sorted(want_ids))
        if request.productTypes:
            allowed = {PRODUCT_TYPE_OF[p] for p in request.productTypes}
            for t in txs:
                expect(
                    t.type in allowed,
                    f"history filtered by productType {[p.value for p in request.productTypes]} "
                    f"returned transaction {t.transactionId} of type {t.rawType!r}",
                )
        return got

    all_ids = [f["transaction_id"] for f in ios]
    ascending = r.check(
        "apple: get_transaction_history v2 (no filters) -> every fixture, each verified",
        history,
        TransactionHistoryRequest(),
        all_ids,
    )

    def descending():
        got = history(TransactionHistoryRequest(sort=Order.DESCENDING), all_ids)
        if ascending is not None:
            expect_eq("DESCENDING order", got, list(reversed(ascending)))

    r.check("apple: get_transaction_history v2 (sort=DESCENDING) -> reverse of the default order", descending)
    # Exactly the request in Apple's README: the library sends revoked=False as the string
    # "False" and productType=AUTO_RENEWABLE, both of which Apple's server accepts.
    auto_ids = [f["transaction_id"] for f in ios if f.get("type") == "Auto-Renewable Subscription"]
    r.check(
        "apple: get_transaction_history v2 (README request: ASCENDING, revoked=False, AUTO_RENEWABLE)",
        history,
        TransactionHistoryRequest(
            sort=Order.ASCENDING, revoked=False, productTypes=[ProductType.AUTO_RENEWABLE]
        ),
        auto_ids,
    )

    # get_all_subscription_statuses + renewal info
    def statuses():
        resp = client.get_all_subscription_statuses(sub["transaction_id"])
        expect_model(client.last_json(), StatusResponse, "StatusResponse")
        expect_eq("statuses bundleId", resp.bundleId, a["bundle_id"])
        expect_eq("statuses appAppleId", resp.appAppleId, int(a["app_apple_id"]))
        expect_eq("statuses environment", resp.environment, Environment.SANDBOX)
        expect(bool(resp.data), "statuses data is empty for the subscription fixture")
        items = [lt for group in resp.data for lt in (group.lastTransactions or [])]
        expect(bool(items), "statuses has no lastTransactions")
        for lt in items:
            expect(lt.status is not None, f"status {lt.rawStatus!r} is not an Apple status")
            expect_eq("lastTransaction status", lt.status, Status.ACTIVE)
            expect_eq(
                "lastTransaction originalTransactionId",
                lt.originalTransactionId,
                sub["original_transaction_id"],
            )
            verify_transaction("status signedTransactionInfo", lt.signedTransactionInfo, sub)
            secret(lt.signedRenewalInfo)
            ren = verifier.verify_and_decode_renewal_info(lt.signedRenewalInfo)
            expect_model(
                jws_payload(lt.signedRenewalInfo), JWSRenewalInfoDecodedPayload, "renewal info payload"
            )
            expect_eq("renewal originalTransactionId", ren.originalTransactionId, sub["original_transaction_id"])
            expect_eq("renewal productId", ren.productId, sub["product_id"])
            expect_eq("renewal environment", ren.environment, Environment.SANDBOX)
            signed.append(("renewal info", "renewal", lt.signedRenewalInfo))

    r.check(
        f"apple: get_all_subscription_statuses({sub['transaction_id']}) -> ACTIVE, transaction and renewal info verified",
        statuses,
    )

    # request_test_notification -> get_test_notification_status -> verify notification
    def test_notification():
        sent = client.request_test_notification()
        expect_model(client.last_json(), SendTestNotificationResponse, "SendTestNotificationResponse")
        token = sent.testNotificationToken
        expect(bool(token), "testNotificationToken is empty")
        secret(token)
        status = None
        for _ in range(40):  # up to ~10 s for the fake to deliver
            status = client.get_test_notification_status(token)
            if status.sendAttempts:
                break
            time.sleep(0.25)
        expect_model(client.last_json(), CheckTestNotificationResponse, "CheckTestNotificationResponse")
        expect(bool(status.sendAttempts), "no sendAttempts after ~10 s")
        attempt = status.sendAttempts[-1]
        expect(isinstance(attempt.attemptDate, int), "sendAttempt has no attemptDate")
        expect_eq("sendAttemptResult", attempt.sendAttemptResult, SendAttemptResult.SUCCESS)
        expect(bool(status.signedPayload), "test notification has no signedPayload")
        secret(status.signedPayload)
        n = verifier.verify_and_decode_notification(status.signedPayload)
        expect_model(jws_payload(status.signedPayload), ResponseBodyV2DecodedPayload, "notification payload")
        expect_eq("notificationType", n.notificationType, NotificationTypeV2.TEST)
        expect(bool(n.notificationUUID), "notificationUUID is empty")
        expect(n.data is not None, "notification has no data")
        expect_eq("notification data.bundleId", n.data.bundleId, a["bundle_id"])
        expect_eq("notification data.environment", n.data.environment, Environment.SANDBOX)
        signed.append(("TEST notification", "notification", status.signedPayload))

    r.check(
        "apple: request_test_notification + get_test_notification_status -> SUCCESS, TEST notification verified",
        test_notification,
    )

    # b. NEGATIVE: the same data under a root nobody configured must be refused.
    def untrusted_root():
        expect(bool(signed), "nothing was verified, so nothing to re-check")
        other = new_verifier([throwaway_root_der()])
        decode = {
            "transaction": other.verify_and_decode_signed_transaction,
            "renewal": other.verify_and_decode_renewal_info,
            "notification": other.verify_and_decode_notification,
        }
        for what, kind, jws in signed:
            try:
                decode[kind](jws)
            except VerificationException:
                continue
            raise CheckFailed(f"{what} was accepted by a verifier trusting a different root")

    r.check("apple: a verifier with a different root rejects all of it (VerificationException)", untrusted_root)

    # The sandbox's signed-data faults must be exactly what Apple's verifier refuses.
    def jws_fault(mode: str):
        token_file = m.get("backend", {}).get("admin_token_file")
        expect(bool(token_file), "manifest lacks backend.admin_token_file")
        admin = {"Authorization": "Bearer " + secret(Path(token_file).read_text().strip())}
        url = a["base_url"].rstrip("/") + "/sandbox/faults"
        before = requests.get(url, headers=admin, timeout=30)
        expect_eq("GET /sandbox/faults status", before.status_code, 200)
        previous = before.json()
        try:
            put = requests.put(url, headers=admin, data=json.dumps({**previous, "jws": mode}), timeout=30)
            expect_eq(f"PUT /sandbox/faults jws={mode} status", put.status_code, 200)
            jws = secret(client.get_transaction_info(sub["transaction_id"]).signedTransactionInfo)
        finally:
            restore = requests.put(url, headers=admin, data=json.dumps(previous), timeout=30)
            expect_eq("restoring /sandbox/faults status", restore.status_code, 200)
        try:
            verifier.verify_and_decode_signed_transaction(jws)
        except VerificationException:
            return
        raise CheckFailed(f"the jws={mode} fault produced data Apple's verifier accepts")

    for mode in ("expired", "untrusted", "bad-signature"):
        r.check(f"apple: sandbox fault jws={mode} is rejected by SignedDataVerifier", jws_fault, mode)

    # The fake must refuse what Apple refuses: a token signed by a key it never issued.
    def foreign_key():
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            apple_client(a, pem).get_transaction_info(ios[0]["transaction_id"])
        except APIException as e:
            expect_eq("HTTP status for a foreign-key token", e.http_status_code, 401)
            return
        raise CheckFailed("a JWT signed by an unknown key was accepted")

    r.check("apple: a JWT signed with a foreign key is refused with 401", foreign_key)

    # Errors must carry Apple's status and errorCode, which the library maps to APIError.
    def api_error(call, status: int, want: APIError):
        try:
            call()
        except APIException as e:
            got = e.api_error.name if e.api_error is not None else e.raw_api_error
            expect_eq(f"errorCode (HTTP {e.http_status_code})", (e.http_status_code, got), (status, want.name))
            return
        raise CheckFailed(f"expected {status} {want.name}, the call succeeded")

    r.check(
        "apple: unknown transaction id -> 404 TRANSACTION_ID_NOT_FOUND",
        api_error, lambda: client.get_transaction_info("9999999999999999"), 404, APIError.TRANSACTION_ID_NOT_FOUND,
    )
    r.check(
        "apple: malformed transaction id -> 400 INVALID_TRANSACTION_ID",
        api_error, lambda: client.get_transaction_info("not-a-number"), 400, APIError.INVALID_TRANSACTION_ID,
    )
    r.check(
        "apple: unknown test notification token -> 404 TEST_NOTIFICATION_NOT_FOUND",
        api_error, lambda: client.get_test_notification_status("unknown_0"), 404, APIError.TEST_NOTIFICATION_NOT_FOUND,
    )
    # The typed request cannot express a bad sort; send one through the client's own
    # request path (same URL building, JWT and error parsing).
    r.check(
        "apple: history with an invalid sort -> 400 INVALID_SORT",
        api_error,
        lambda: client._make_request(
            f"/inApps/v2/history/{sub['transaction_id']}", "GET", {"sort": ["SIDEWAYS"]}, None, HistoryResponse
        ),
        400,
        APIError.INVALID_SORT,
    )


# ---------------------------------------------------------------------------------------
# Google


def run_google(r: Runner, m: dict):
    g = m["google"]
    sa_file = g["service_account_file"]
    products = [f for f in m["fixtures"].get("android", []) if f.get("kind") == "product"]
    for f in m["fixtures"].get("android", []):
        secret(f.get("purchase_token", ""))

    def token():
        info = json.loads(Path(sa_file).read_text())
        secret(info.get("private_key", ""))
        expect_eq("service account token_uri", info.get("token_uri"), g["token_uri"])
        creds = service_account.Credentials.from_service_account_file(sa_file, scopes=[PLAY_SCOPE])
        creds.refresh(google.auth.transport.requests.Request())
        expect(bool(creds.token), "no access token after refresh")
        secret(creds.token)
        expect(creds.expiry is not None, "no expiry after refresh")
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)  # google-auth: naive UTC
        expect(creds.expiry > now, f"expiry {creds.expiry.isoformat()}Z is not in the future")
        expect(creds.valid, "credentials are not valid after refresh")
        return creds

    creds = r.check("google: service_account.Credentials.refresh() -> token, expiry in the future", token)

    def wrong_scope():
        c = service_account.Credentials.from_service_account_file(
            sa_file, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        try:
            c.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.RefreshError:
            return
        secret(c.token or "")
        raise CheckFailed("a token without the androidpublisher scope was issued")

    r.check("google: a refresh without the androidpublisher scope is refused (RefreshError)", wrong_scope)

    if creds is None:
        r.skip("google: Play Developer API product purchase", "no access token")
        return
    expect(bool(products), "manifest has no android fixture of kind 'product'")

    def product_purchase():
        p = products[0]
        base = g.get("base_url") or m["apple"]["base_url"]
        url = (
            f"{base.rstrip('/')}/androidpublisher/v3/applications/{g['package_name']}"
            f"/purchases/products/{p['product_id']}/tokens/{p['purchase_token']}"
        )
        session = google.auth.transport.requests.AuthorizedSession(creds)
        resp = session.get(url, timeout=30)
        expect_eq("HTTP status with the bearer token", resp.status_code, 200)
        body = resp.json()
        expect_eq("kind", body.get("kind"), "androidpublisher#productPurchase")
        expect_eq("orderId", body.get("orderId"), p["order_id"])
        expect_eq("purchaseState", body.get("purchaseState"), 0)
        expect(
            isinstance(body.get("purchaseTimeMillis"), str) and body["purchaseTimeMillis"].isdigit(),
            "purchaseTimeMillis is not an int64 decimal string (Google encodes int64 as JSON strings)",
        )
        anon = requests.get(url, timeout=30)
        expect_eq("HTTP status without a token", anon.status_code, 401)

    r.check(
        "google: Play API purchases.products.get with the bearer token -> 200 (401 without)",
        product_purchase,
    )


# ---------------------------------------------------------------------------------------


def load_manifest(state_dir: Path) -> dict:
    path = state_dir / "sandbox.json"
    last = None
    for _ in range(50):  # the sandbox may still be writing it
        try:
            m = json.loads(path.read_text())
            for section, keys in {
                "apple": ["base_url", "issuer_id", "key_id", "bundle_id", "app_apple_id",
                          "private_key_file", "root_ca_file"],
                "google": ["token_uri", "service_account_file", "package_name"],
                "fixtures": ["ios", "android"],
            }.items():
                for k in keys:
                    if k not in m.get(section, {}):
                        raise CheckFailed(f"manifest {path} lacks {section}.{k}")
            return m
        except (OSError, ValueError) as e:
            last = e
            time.sleep(0.1)
    raise CheckFailed(f"cannot read the manifest {path}: {last}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} STATE_DIR", file=sys.stderr)
        return 2
    try:
        m = load_manifest(Path(argv[1]))
    except CheckFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    r = Runner()
    for section in (run_apple, run_google):
        try:
            section(r, m)
        except Exception as e:  # noqa: BLE001 - a broken section is a failure, not a crash
            r.failed += 1
            print(f"FAIL  {section.__name__}: {describe(e)}", flush=True)
    print(f"compat: {r.passed} passed, {r.failed} failed", flush=True)
    if r.failed:
        print(
            "error: the sandbox is not faithful to the official client libraries "
            "(see FAIL lines above); fix the fake, not this check",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
