#!/usr/bin/env python3
"""Contract test: the Genesys Cloud simulator (crates/genesys-sim) against the models of the
official Genesys Cloud Python SDK (PyPI `purecloudplatformclientv2`).

It drives the simulator through every endpoint the Rust client (crates/genesys-media) uses and
checks each JSON answer field by field against the model the SDK's api classes name for that
endpoint (`response_type`), recursively: every field must be one the model has (a mismatch is
reported with its JSON path), of the model's type (str, int, float, bool, date-time strings,
lists, maps, nested models), and within the values the model's property setter allows. With
`--captured FILE` it also checks what the real client sent, as `genesys-archiver sim
--capture-requests FILE` recorded it: every request must be an SDK operation, its query
parameters ones that operation takes, and its body (ConversationQuery, AsyncConversationQuery,
BatchDownloadJobSubmission) must pass the same checks against the operation's body model.

Where the simulator and the SDK differ, the SDK wins: fix the simulator.

Usage: sdk_contract.py --base URL --interval START/END [--captured FILE]...
Exit status: 0 all answers and requests match, 1 a mismatch, 2 the test could not run.

The OAuth token answer has no model in the Python SDK (its ApiClient reads `access_token`
only); it is checked against the Go SDK's AuthResponse / AuthErrorResponse field names
(shared/genesys-api.md section 1).
"""

import argparse
import ast
import base64
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import re
import sys
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

PKG = "PureCloudPlatformClientV2"

# The operations of the SDK that the Rust client calls: (api class file, method).
OPERATIONS = {
    "token": None,
    "details_query": ("analytics_api", "post_analytics_conversations_details_query"),
    "jobs_submit": ("analytics_api", "post_analytics_conversations_details_jobs"),
    "jobs_availability": ("analytics_api", "get_analytics_conversations_details_jobs_availability"),
    "job_status": ("analytics_api", "get_analytics_conversations_details_job"),
    "job_results": ("analytics_api", "get_analytics_conversations_details_job_results"),
    "batch_submit": ("recording_api", "post_recording_batchrequests"),
    "batch_status": ("recording_api", "get_recording_batchrequest"),
    "recording_metadata": ("recording_api", "get_conversation_recordingmetadata"),
    "recording": ("recording_api", "get_conversation_recording"),
    "retention": ("recording_api", "get_recordings_retention_query"),
    "orphans": ("recording_api", "get_orphanrecordings"),
    "orphan": ("recording_api", "get_orphanrecording"),
    "orphan_media": ("recording_api", "get_orphanrecording_media"),
    "divisions": ("authorization_api", "get_authorization_divisionspermitted_paged_me"),
}
# Token answers (Go SDK `AuthResponse`, `AuthErrorResponse`).
TOKEN_FIELDS = {"access_token": str, "token_type": str, "expires_in": int, "refresh_token": str}
TOKEN_ERROR_FIELDS = {"error": str, "description": str, "error_description": str}

DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)")
LOCAL_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?")
DATE = re.compile(r"\d{4}-\d\d-\d\d")


class Operation:
    """One SDK operation as its api class declares it."""

    def __init__(self, api, method, src):
        def one(pattern):
            m = re.search(pattern, src)
            return m.group(1) if m else None

        self.name = f"{api}.{method}"
        self.path = one(r"resource_path = '([^']+)'")
        self.http = one(r"call_api\(resource_path, '(\w+)'")
        response = one(r"response_type=('[^']*'|None)")
        self.response = None if response in (None, "None") else response.strip("'")
        self.body = one(r":param (\w+) body:")
        self.query = set(re.findall(r"query_params\['(\w+)'\]", src))
        if not self.path or not self.http:
            raise SystemExit(f"cannot read {self.name} from the SDK")
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(self.path))
        self.regex = re.compile(pattern + r"\Z")

    def matches(self, method, path):
        return method == self.http and self.regex.match(path) is not None


class Sdk:
    """The SDK's models and api classes, read from the installed package. The package's own
    `__init__` imports all of its ~6,600 models (most of a minute here), so a bare package
    object stands in for it and only the model modules needed are imported."""

    def __init__(self):
        spec = importlib.util.find_spec(PKG)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"the Python package {PKG} is not installed")
        self.dir = Path(list(spec.submodule_search_locations)[0])
        self.version = importlib.metadata.version(PKG)
        for name, sub in ((PKG, self.dir), (f"{PKG}.models", self.dir / "models")):
            mod = types.ModuleType(name)
            mod.__path__ = [str(sub)]
            sys.modules.setdefault(name, mod)
        text = (self.dir / "models" / "__init__.py").read_text()
        self.module_of = {c: m for m, c in re.findall(r"^from \.(\w+) import (\w+)$", text, re.M)}
        self._fields = {}
        self._enums = {}
        self._api_src = {}

    def operation(self, api, method):
        if api not in self._api_src:
            self._api_src[api] = (self.dir / "apis" / f"{api}.py").read_text()
        src = self._api_src[api]
        m = re.search(rf"\n    def {method}\(self.*?(?=\n    def |\Z)", src, re.S)
        if not m:
            raise SystemExit(f"the SDK has no {api}.{method}")
        return Operation(api, method, m.group(0))

    def model(self, name):
        if name not in self.module_of:
            raise SystemExit(f"the SDK has no model {name}")
        return getattr(importlib.import_module(f"{PKG}.models.{self.module_of[name]}"), name)

    def fields(self, name):
        """(swagger_types, {json name: attribute}) of a model."""
        if name not in self._fields:
            obj = self.model(name)()
            self._fields[name] = (obj.swagger_types, {j: a for a, j in obj.attribute_map.items()})
        return self._fields[name]

    def enum(self, name, attr):
        """The values the property setter of `attr` allows, or None."""
        key = (name, attr)
        if key not in self._enums:
            prop = inspect.getattr_static(self.model(name), attr, None)
            values = None
            if isinstance(prop, property) and prop.fset is not None:
                m = re.search(r"allowed_values = (\[.*?\])", inspect.getsource(prop.fset), re.S)
                values = ast.literal_eval(m.group(1)) if m else None
            self._enums[key] = values
        return self._enums[key]


def json_type(v):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


class Checker:
    """Checks JSON values against SDK types and collects the mismatches."""

    def __init__(self, sdk):
        self.sdk = sdk
        self.problems = defaultdict(list)  # (where, path with [] for indexes, message) -> paths
        self.values = 0

    def fail(self, where, path, message):
        self.problems[(where, re.sub(r"\[\d+\]", "[]", path), message)].append(path)

    def check(self, where, value, typ, path="$"):
        self.values += 1
        if value is None:
            return  # the SDK reads null as absent
        m = re.fullmatch(r"list\[(.+)\]", typ)
        if m:
            if not isinstance(value, list):
                return self.fail(where, path, f"{typ} expected, got {json_type(value)}")
            for i, v in enumerate(value):
                self.check(where, v, m.group(1), f"{path}[{i}]")
            return
        m = re.fullmatch(r"dict\((\w+), (.+)\)", typ)
        if m:
            if not isinstance(value, dict):
                return self.fail(where, path, f"{typ} expected, got {json_type(value)}")
            for k, v in value.items():
                self.check(where, v, m.group(2), f"{path}.{k}")
            return
        ok = {
            "str": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
            "object": lambda v: True,
            "datetime": lambda v: isinstance(v, str) and DATETIME.fullmatch(v) is not None,
            "LocalDateTime": lambda v: isinstance(v, str) and LOCAL_DATETIME.fullmatch(v),
            "date": lambda v: isinstance(v, str) and DATE.fullmatch(v) is not None,
        }.get(typ)
        if ok is not None:
            if not ok(value):
                self.fail(where, path, f"{typ} expected, got {json_type(value)} {value!r:.60}")
            return
        self.check_model(where, value, typ, path)

    def check_model(self, where, value, name, path):
        if not isinstance(value, dict):
            return self.fail(where, path, f"{name} (an object) expected, got {json_type(value)}")
        swagger_types, attrs = self.sdk.fields(name)
        for key, v in value.items():
            p = f"{path}.{key}"
            attr = attrs.get(key)
            if attr is None:
                self.fail(where, p, f"field {key!r} is not in the SDK model {name}")
                continue
            self.check(where, v, swagger_types[attr], p)
            allowed = self.sdk.enum(name, attr)
            if allowed:
                for x in v if isinstance(v, list) else [v]:
                    if isinstance(x, str) and x not in allowed:
                        self.fail(where, p, f"{x!r} is not one of {name}.{key}'s values {allowed}")

    def check_fields(self, where, value, fields, path="$"):
        """Checks an object against a plain {name: type} table (the token answers)."""
        if not isinstance(value, dict):
            return self.fail(where, path, f"an object expected, got {json_type(value)}")
        for k, v in value.items():
            if k not in fields:
                self.fail(where, f"{path}.{k}", f"field {k!r} is not in {sorted(fields)}")
            elif not isinstance(v, fields[k]) or isinstance(v, bool):
                self.fail(where, f"{path}.{k}", f"{fields[k].__name__} expected, got {json_type(v)}")


class Client:
    """Plain HTTP to the simulator, so that every status and every byte of a body is seen."""

    def __init__(self, base, chk, ops):
        self.base = base.rstrip("/")
        self.chk = chk
        self.ops = ops
        self.token = None
        self.headers = {}
        self.seen = defaultdict(lambda: defaultdict(int))  # operation -> status -> count

    def raw(self, method, path, body=None, headers=None, form=None):
        headers = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text, self.headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, text, self.headers = e.code, e.read(), e.headers
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            raise SystemExit(f"{method} {path}: {status} with a body that is not JSON: {text[:200]!r}")

    def call(self, op, path, body=None, expect=(200,), auth=True):
        """Calls operation `op`, checks the status and the answer against the SDK model
        (ErrorBody for an error status) and returns (status, JSON)."""
        o = self.ops[op]
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        status, answer = self.raw(o.http, path, body, headers)
        where = f"{o.http} {o.path}"
        if not o.matches(o.http, urllib.parse.urlsplit(path).path):
            raise SystemExit(f"{path} is not a path of {o.name}")
        self.seen[where][status] += 1
        if status not in expect:
            self.chk.fail(where, "status", f"{status} answered, {expect} expected: {answer}")
        if status >= 400:
            self.chk.check(f"{where} ({status})", answer, "ErrorBody")
            if status == 429 and not self.headers.get("Retry-After"):
                self.chk.fail(where, "Retry-After", "a 429 without a Retry-After header")
        elif o.response:
            self.chk.check(where, answer, o.response)
        return status, answer

    def until(self, op, path, done, expect=(200, 202), tries=100):
        """Calls until `done(status, answer)`, 50 ms apart; returns every answer."""
        answers = []
        for _ in range(tries):
            status, answer = self.call(op, path, expect=expect)
            answers.append((status, answer))
            if done(status, answer):
                return answers
            time.sleep(0.05)
        raise SystemExit(f"{path}: not done after {tries} calls: {answers[-1]}")


def drive(c, chk, args):
    """Every endpoint the client uses, with the answers the simulator can give."""
    basic = base64.b64encode(f"{args.client_id}:{args.client_secret}".encode()).decode()
    form = {"grant_type": "client_credentials"}
    status, tok = c.raw("POST", "/oauth/token", form=form, headers={"Authorization": f"Basic {basic}"})
    c.seen["POST /oauth/token"][status] += 1
    if status != 200 or not isinstance(tok, dict) or "access_token" not in tok:
        raise SystemExit(f"no token: {status} {tok}")
    chk.check_fields("POST /oauth/token", tok, TOKEN_FIELDS)
    c.token = tok["access_token"]
    wrong = base64.b64encode(f"{args.client_id}:not-the-secret".encode()).decode()
    status, err = c.raw("POST", "/oauth/token", form=form, headers={"Authorization": f"Basic {wrong}"})
    c.seen["POST /oauth/token"][status] += 1
    if status != 401:
        chk.fail("POST /oauth/token", "status", f"{status} for a wrong secret, 401 expected")
    chk.check_fields("POST /oauth/token (401)", err, TOKEN_ERROR_FIELDS)

    # Analytics: availability (first a 429: the simulator runs with --throttle-first 1), the
    # details query (every page), a details job.
    availability = "/api/v2/analytics/conversations/details/jobs/availability"
    c.call("jobs_availability", availability, expect=(429,))
    c.call("jobs_availability", availability)
    conversations = []
    page = 1
    while True:
        q = {"interval": args.interval, "order": "asc", "orderBy": "conversationStart",
             "paging": {"pageSize": 25, "pageNumber": page}}
        chk.check("(the test's own ConversationQuery)", q, c.ops["details_query"].body)
        _, a = c.call("details_query", "/api/v2/analytics/conversations/details/query", q)
        if not a.get("conversations"):
            break
        conversations += a["conversations"]
        page += 1
    _, job = c.call("jobs_submit", "/api/v2/analytics/conversations/details/jobs",
                    {"interval": args.interval}, expect=(200, 202))
    status_path = f"/api/v2/analytics/conversations/details/jobs/{job['jobId']}"
    c.until("job_status", status_path, lambda s, a: a.get("state") == "FULFILLED", expect=(200,))
    cursor = None
    while True:
        path = f"{status_path}/results?pageSize=10"
        if cursor:
            path += "&cursor=" + urllib.parse.quote(cursor, safe="")
        _, a = c.call("job_results", path)
        cursor = a.get("cursor")
        if not cursor:
            break

    # Recordings: metadata of every conversation, then each recording's media (202, 200).
    recordings = []
    for conv in conversations:
        cid = conv["conversationId"]
        _, metas = c.call("recording_metadata", f"/api/v2/conversations/{cid}/recordingmetadata")
        recordings += [(cid, m["id"], m.get("fileState")) for m in metas or []]
    states = defaultdict(int)
    for cid, rid, state in recordings:
        states[state] += 1
        answers = c.until("recording", f"/api/v2/conversations/{cid}/recordings/{rid}?formatId=WAV",
                          lambda s, a: s == 200)
        if state == "AVAILABLE" and not answers[-1][1].get("mediaUris"):
            chk.fail("GET /api/v2/conversations/{conversationId}/recordings/{recordingId}",
                     "$.mediaUris", f"no mediaUris for AVAILABLE recording {rid}")
    print(f"  {len(conversations)} conversations, {len(recordings)} recordings "
          f"({', '.join(f'{n} {s}' for s, n in sorted(states.items(), key=str))})")

    # Batch download: one item per recording (at most 100), one for a whole conversation.
    items = [{"conversationId": cid, "recordingId": rid} for cid, rid, _ in recordings[:99]]
    items.append({"conversationId": recordings[0][0]})
    body = {"batchDownloadRequestList": items}
    chk.check("(the test's own BatchDownloadJobSubmission)", body, c.ops["batch_submit"].body)
    _, sub = c.call("batch_submit", "/api/v2/recording/batchrequests", body)
    c.until("batch_status", f"/api/v2/recording/batchrequests/{sub['id']}",
            lambda s, a: a.get("status") == "Completed", expect=(200,))

    # The retention query, page by page through nextUri.
    path = "/api/v2/recordings/retention/query?retentionThresholdDays=0&pageSize=20"
    while path:
        _, a = c.call("retention", path)
        path = a.get("nextUri")

    # Orphans: the listing (two pages of one), each orphan and its media.
    _, first = c.call("orphans", "/api/v2/orphanrecordings?pageSize=1&pageNumber=1")
    if first.get("nextUri"):
        c.call("orphans", first["nextUri"])
    _, listing = c.call("orphans", "/api/v2/orphanrecordings?pageSize=100")
    for o in listing.get("entities") or []:
        c.call("orphan", f"/api/v2/orphanrecordings/{o['id']}")
        c.until("orphan_media", f"/api/v2/orphanrecordings/{o['id']}/media?formatId=WAV",
                lambda s, a: s == 200)

    c.call("divisions", "/api/v2/authorization/divisionspermitted/paged/me"
           "?permission=recording%3Arecording%3Aview&pageSize=1")

    # Error answers (ErrorBody).
    c.call("recording_metadata", "/api/v2/conversations/no-such-conversation/recordingmetadata",
           expect=(404,))
    c.call("details_query", "/api/v2/analytics/conversations/details/query", {}, expect=(400,))
    c.call("retention", "/api/v2/recordings/retention/query", expect=(400,))
    c.call("batch_status", "/api/v2/recording/batchrequests/no-such-job", expect=(404,))
    c.call("orphan", "/api/v2/orphanrecordings/no-such-orphan", expect=(404,))
    cid, rid, _ = recordings[0]
    c.call("recording", f"/api/v2/conversations/{cid}/recordings/{rid}?formatId=NO_SUCH_FORMAT",
           expect=(400,))
    c.call("recording_metadata", f"/api/v2/conversations/{cid}/recordingmetadata", expect=(401,),
           auth=False)


def check_captured(files, chk, ops):
    """The requests the real client sent, one JSON object a line (method, path, query, body)."""
    by_op = defaultdict(int)
    for f in files:
        for n, line in enumerate(Path(f).read_text().splitlines(), 1):
            if not line.strip():
                continue
            r = json.loads(line)
            method, path = r["method"], r["path"]
            op = next((o for k, o in ops.items() if o and o.matches(method, path)), None)
            where = f"client {method} {op.path if op else path}"
            if op is None:
                chk.fail(where, f"{f}:{n}", "the SDK has no such operation")
                continue
            by_op[op.name] += 1
            for name in urllib.parse.parse_qs(r.get("query") or "", keep_blank_values=True):
                if name not in op.query:
                    chk.fail(where, f"?{name}", f"query parameter {name!r} is not one of "
                             f"{op.name}'s {sorted(op.query)}")
            body = r.get("body")
            if op.body:
                if body is None:
                    chk.fail(where, "body", f"no body ({op.body} expected)")
                else:
                    chk.check(f"{where} body", body, op.body)
            elif body is not None:
                chk.fail(where, "body", "a body the operation does not take")
    for o in ("details_query", "jobs_submit", "batch_submit"):
        if not by_op.get(ops[o].name):
            chk.fail("client requests", "-", f"the client sent no {ops[o].http} {ops[o].path} "
                     "(its body went unchecked)")
    return by_op


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the simulator's base URL")
    p.add_argument("--interval", required=True, help="START/END (RFC 3339) of the simulated org")
    p.add_argument("--client-id", default="sim-client")
    p.add_argument("--client-secret", default="sim-secret")
    p.add_argument("--captured", action="append", default=[],
                   help="requests recorded by `sim --capture-requests` (repeatable)")
    args = p.parse_args()

    t0 = time.monotonic()
    sdk = Sdk()
    ops = {k: sdk.operation(*v) if v else None for k, v in OPERATIONS.items()}
    chk = Checker(sdk)
    print(f"SDK {PKG} {sdk.version}; simulator at {args.base}")
    c = Client(args.base, chk, ops)
    drive(c, chk, args)
    print("answers checked (endpoint: SDK operation -> model; statuses seen):")
    for k, o in ops.items():
        where = f"{o.http} {o.path}" if o else "POST /oauth/token"
        seen = c.seen.get(where)
        model = f"{o.name} -> {o.response}" if o else "AuthResponse (Go SDK)"
        statuses = ", ".join(f"{s} x{n}" for s, n in sorted(seen.items())) if seen else "NONE"
        print(f"  {where}: {model}; {statuses}")
        if not seen:
            chk.fail(where, "-", "not exercised")
    for op in ("recording", "orphan_media"):
        where = f"{ops[op].http} {ops[op].path}"
        if not c.seen[where].get(202):
            chk.fail(where, "status", "no 202 (transcoding) answer was seen, so none was checked")
    if args.captured:
        by_op = check_captured(args.captured, chk, ops)
        print("client requests checked: " + ", ".join(f"{k} x{n}" for k, n in sorted(by_op.items())))
    print(f"{chk.values} JSON values checked in {time.monotonic() - t0:.1f}s")
    if chk.problems:
        print(f"\n{len(chk.problems)} MISMATCHES with the SDK models:")
        for (where, path, message), paths in sorted(chk.problems.items()):
            times = f" ({len(paths)} times, e.g. {paths[0]})" if len(paths) > 1 else ""
            print(f"  {where}: {path}: {message}{times}")
        print("sdk contract: FAILED")
        return 1
    print("sdk contract: every answer and request matches the SDK models")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as e:
        if isinstance(e.code, str):
            print(f"sdk contract: cannot run: {e.code}", file=sys.stderr)
            sys.exit(2)
        raise
