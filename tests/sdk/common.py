"""What every SDK suite shares: the emulator under test, its inventory, the keys.

The runner (run_sdk_tests.py) starts `tagbinder emulator` once and passes its URL in the
environment (TAGBINDER_EMULATOR_URL). Each suite works on resources of its own, so the
suites can run in any order. Written from the specs in spec, not from tagbinder's
client code.
"""

import json
import os
import urllib.request

ACCESS_KEY_ID = "LTAI5tSdkSuiteKey"
ACCESS_KEY_SECRET = "SdkSuiteSecret0123456789abcdef"
WRONG_SECRET = "not-the-secret"
ALIBABA_REGION = "cn-hangzhou"
JDCLOUD_REGION = "cn-north-1"
# The emulator serves each list page with at most this many entries, so that every list
# call below needs several pages.
PAGE_SIZE = 2


def ids(prefix, count):
    """`prefix-1` .. `prefix-count`."""
    return [f"{prefix}-{n}" for n in range(1, count + 1)]


def _alibaba(kind, prefix, count, tags=None):
    return [
        {"cloud": "alibaba", "region": ALIBABA_REGION, "type": kind, "id": i, "tags": dict(tags or {})}
        for i in ids(prefix, count)
    ]


def _jdcloud(code, prefix, count):
    return [
        {"cloud": "jdcloud", "region": JDCLOUD_REGION, "type": code, "id": i, "tags": {}}
        for i in ids(prefix, count)
    ]


def inventory():
    """Accounts and resources of every suite."""
    resources = []
    # aliyun-python-sdk-core (V1), on API Gateway and ECS.
    resources += _alibaba("apiGroup", "g-v1", 5)
    resources += _alibaba("instance", "i-v1", 3)
    # The tea-openapi typed clients (V3).
    resources += _alibaba("apiGroup", "g-v3", 5)
    resources += _alibaba("apiGroup", "g-sts", 1)
    resources += _alibaba("instance", "i-v3", 5)
    # The Tag service (V3 typed client, and V1 CommonRequest), by product:type; one system tag.
    resources += _alibaba("rds:dbinstance", "rm-v3", 3, {"acs:rm:rgId": "rg-sdk"})
    resources += _alibaba("oss:bucket", "b-v3", 2)
    resources += _alibaba("rds:dbinstance", "rm-v1", 3)
    # jdcloud-sdk (JDCLOUD3) and jdcloud-sdk-core 1.3.3 (JDCLOUD2).
    resources += _jdcloud("vm", "i-jd3", 5)
    resources += _jdcloud("vm", "i-jd2", 5)
    return {
        "accounts": [{"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}],
        "resources": resources,
    }


def url():
    """The emulator's base URL, e.g. http://127.0.0.1:41234."""
    return os.environ["TAGBINDER_EMULATOR_URL"]


def host_port():
    """`127.0.0.1:PORT`, the endpoint every SDK is pointed at."""
    return url().split("://", 1)[1]


def cloud_tags(cloud, kind, resource_id):
    """The tags the emulator holds for a resource (GET /_emulator/state)."""
    with urllib.request.urlopen(url() + "/_emulator/state", timeout=10) as answer:
        state = json.load(answer)
    return state["resources"][cloud][kind][resource_id]["tags"]


def account_uid(access_key_id):
    """The emulator's account UID of an access key (tagbinder::emulator::account_uid)."""
    import hashlib
    digest = hashlib.sha256(f"tagbinder-emulator-uid:{access_key_id}".encode()).digest()
    return str(int.from_bytes(digest[:8], "big") % 9_000_000_000_000_000 + 1_000_000_000_000_000)


def sts_credentials():
    """Temporary credentials from the emulator's STS AssumeRoleWithOIDC, as RRSA gets them:
    (AccessKeyId, AccessKeySecret, SecurityToken)."""
    import base64
    import time
    import urllib.parse

    def encode(text):
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    token = ".".join([encode('{"alg":"RS256"}'),
                      encode(json.dumps({"sub": "sdk", "exp": int(time.time()) + 3600})), "c2ln"])
    uid = account_uid(ACCESS_KEY_ID)
    body = urllib.parse.urlencode({
        "Action": "AssumeRoleWithOIDC", "Version": "2015-04-01", "Format": "JSON",
        "RoleArn": f"acs:ram::{uid}:role/sdk", "OIDCProviderArn": f"acs:ram::{uid}:oidc-provider/sdk",
        "OIDCToken": token, "RoleSessionName": "sdk-suite"}).encode()
    request = urllib.request.Request(url() + "/", data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        credentials = json.load(answer)["Credentials"]
    return credentials["AccessKeyId"], credentials["AccessKeySecret"], credentials["SecurityToken"]
