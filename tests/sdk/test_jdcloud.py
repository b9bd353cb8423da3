"""JD Cloud's official Python SDK as a client of the emulator's resource-tag service.

Run twice by the runner: in its own process with jdcloud-sdk 1.6.354, whose core signs with
JDCLOUD3-HMAC-SHA256, and in a child process where jdcloud-sdk-core 1.3.3's `jdcloud_sdk.core`
(JDCLOUD2-HMAC-SHA256) stands in for it, with the same service classes. JDCLOUD_SIGNING
(3 or 2) says which one this process holds.

describeResources has no pagination (spec section 3, and the SDK: "该接口目前不支持分页功能"):
one call answers every match, which the list test checks.
"""

import os
import unittest
from unittest import mock

import jdcloud_sdk.core.signer as signer_module
from jdcloud_sdk.core.config import Config
from jdcloud_sdk.core.credential import Credential
from jdcloud_sdk.core.logger import ERROR, Logger
from jdcloud_sdk.services.resourcetag.apis.DescribeResourcesRequest import (
    DescribeResourcesParameters, DescribeResourcesRequest)
from jdcloud_sdk.services.resourcetag.apis.TagResourcesRequest import (
    TagResourcesParameters, TagResourcesRequest)
from jdcloud_sdk.services.resourcetag.apis.UnTagResourcesRequest import (
    UnTagResourcesParameters, UnTagResourcesRequest)
from jdcloud_sdk.services.resourcetag.client.ResourcetagClient import ResourcetagClient
from jdcloud_sdk.services.resourcetag.models.ResourceReqVo import ResourceReqVo
from jdcloud_sdk.services.resourcetag.models.ResourcesMap import ResourcesMap
from jdcloud_sdk.services.resourcetag.models.Tag import Tag
from jdcloud_sdk.services.resourcetag.models.TagFilter import TagFilter
from jdcloud_sdk.services.resourcetag.models.TagResourcesReqVo import TagResourcesReqVo
from jdcloud_sdk.services.resourcetag.models.UnTagResourcesReqVo import UnTagResourcesReqVo

import common

# NB: the SDK's default logger prints every request and answer at INFO.
QUIET = Logger(ERROR)
SIGNING = os.environ.get("JDCLOUD_SIGNING", "3")
PREFIX = f"i-jd{SIGNING}"


def client(secret=common.ACCESS_KEY_SECRET):
    # NB: the SDK's endpoint override: Config(endpoint=host:port, scheme="http").
    return ResourcetagClient(Credential(common.ACCESS_KEY_ID, secret),
                             Config(common.host_port(), scheme="http", timeout=10),
                             logger=QUIET)


def tag(ids, tags, secret=common.ACCESS_KEY_SECRET, header=None):
    body = TagResourcesReqVo(resources=[ResourcesMap(serviceCode="vm", resourceId=ids)],
                             tags=[Tag(key=k, value=v) for k, v in tags.items()])
    return client(secret).send(TagResourcesRequest(
        TagResourcesParameters(common.JDCLOUD_REGION, body), header=header))


def untag(ids, tags):
    body = UnTagResourcesReqVo(resources=[ResourcesMap(serviceCode="vm", resourceId=ids)],
                               tags=[Tag(key=k, value=v) for k, v in tags.items()])
    return client().send(UnTagResourcesRequest(
        UnTagResourcesParameters(common.JDCLOUD_REGION, body)))


def describe(**fields):
    # NB: every field left out is sent as JSON null by the SDK; the cloud reads null as absent.
    vo = ResourceReqVo(serviceCodes=["vm"], **fields)
    return client().send(DescribeResourcesRequest(
        DescribeResourcesParameters(common.JDCLOUD_REGION, vo)))


class JdcloudSdk(unittest.TestCase):
    def test_signing_scheme_is_the_one_asked_for(self):
        import jdcloud_sdk.core.const as const
        self.assertEqual(hasattr(const, "JDCLOUD3_ALGORITHM"), SIGNING == "3")

    def test_tag_list_and_untag(self):
        ids = common.ids(PREFIX, 3)
        answer = tag(ids, {"env": "prod", "team": "web"})
        self.assertIsNone(answer.error)
        data = answer.result["data"]
        self.assertEqual(data["failedResourcesMap"], [])
        self.assertEqual(data["successCount"], 6)
        # By id, and by tag filter alone (issue 13): a TagFilter without values (null) matches
        # any value of its key.
        listed = describe(resourceIds=ids)
        self.assertIsNone(listed.error)
        mappings = listed.result["data"]["resourceTagMappingList"]
        self.assertEqual({m["resourceId"] for m in mappings}, set(ids))
        for filters in ([TagFilter(key="team", values=["web"])], [TagFilter(key="team")]):
            selected = describe(tagFilters=filters)
            self.assertIsNone(selected.error, filters)
            found = {m["resourceId"] for m in selected.result["data"]["resourceTagMappingList"]}
            self.assertEqual(found, set(ids))
        answer = untag(ids, {"team": "web"})
        self.assertIsNone(answer.error)
        self.assertEqual(common.cloud_tags("jdcloud", "vm", f"{PREFIX}-1"), {"env": "prod"})

    def test_unknown_resource_fails_alone(self):
        answer = tag([f"{PREFIX}-4", "i-nope"], {"env": "prod"})
        self.assertIsNone(answer.error)
        failed = answer.result["data"]["failedResourcesMap"]
        self.assertEqual([f["resourceId"] for f in failed], ["i-nope"])
        self.assertEqual(common.cloud_tags("jdcloud", "vm", f"{PREFIX}-4"), {"env": "prod"})

    def test_too_many_resources_and_tags(self):
        answer = tag(common.ids(PREFIX, 51), {"env": "prod"})
        self.assertEqual((answer.error.code, answer.error.status), (400, "INVALID_ARGUMENT"))
        answer = tag([f"{PREFIX}-5"], {f"k{n}": "v" for n in range(11)})
        self.assertEqual((answer.error.code, answer.error.status), (400, "INVALID_ARGUMENT"))
        self.assertNotIn("k0", common.cloud_tags("jdcloud", "vm", f"{PREFIX}-5"))

    def test_wrong_secret(self):
        answer = tag([f"{PREFIX}-5"], {"env": "prod"}, secret=common.WRONG_SECRET)
        self.assertIsNone(answer.result)
        self.assertEqual((answer.error.code, answer.error.status), (401, "UNAUTHENTICATED"))

    def test_replayed_nonce(self):
        if SIGNING == "3":
            # NB: jdcloud-sdk 1.6 signs with the x-jdcloud-nonce the caller passes.
            def send(value):
                return tag([f"{PREFIX}-5"], {"replay": value},
                           header={"x-jdcloud-nonce": "sdk-suite-jd3-nonce"})
            first, second = send("1"), send("2")
        else:
            # NB: jdcloud-sdk-core 1.3.3 always draws its own; make it draw the same twice.
            fixed = mock.Mock(uuid4=mock.Mock(return_value="sdk-suite-jd2-nonce"))
            with mock.patch.object(signer_module, "uuid", fixed):
                first = tag([f"{PREFIX}-5"], {"replay": "1"})
                second = tag([f"{PREFIX}-5"], {"replay": "2"})
        self.assertIsNone(first.error)
        self.assertEqual((second.error.code, second.error.status), (403, "APIGW_NONCE_CONFLICT"))
        self.assertEqual(common.cloud_tags("jdcloud", "vm", f"{PREFIX}-5")["replay"], "1")
