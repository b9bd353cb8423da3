"""The alibabacloud-tea-openapi 0.4.6 typed clients with their default settings (V3
signature, ACS3-HMAC-SHA256, JSON) as clients of the emulator: API Gateway 2016-07-14
(alibabacloud_cloudapi20160714), ECS 2014-05-26 (alibabacloud_ecs20140526) and the Tag
service 2018-08-28 (alibabacloud_tag20180828)."""

import json
import unittest
from unittest import mock

from alibabacloud_cloudapi20160714 import models as cloudapi_models
from alibabacloud_cloudapi20160714.client import Client as CloudApiClient
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tag20180828 import models as tag_models
from alibabacloud_tag20180828.client import Client as TagClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_openapi.utils_models import Config

import common


def config(secret=common.ACCESS_KEY_SECRET):
    # NB: the endpoint override of the typed clients: `endpoint` (host:port) and `protocol`.
    # Everything else, the signature algorithm included, stays at its default.
    return Config(access_key_id=common.ACCESS_KEY_ID, access_key_secret=secret,
                  region_id=common.ALIBABA_REGION, endpoint=common.host_port(), protocol="http")


class StsCredentialsV3(unittest.TestCase):
    """The typed client with STS credentials (security_token: the x-acs-security-token
    header, signed), issued by the emulator's AssumeRoleWithOIDC; without the token the same
    key is refused."""

    def client(self, with_token=True):
        key_id, secret, token = common.sts_credentials()
        return CloudApiClient(Config(
            access_key_id=key_id, access_key_secret=secret,
            security_token=token if with_token else None, region_id=common.ALIBABA_REGION,
            endpoint=common.host_port(), protocol="http"))

    def request(self, groups):
        return cloudapi_models.TagResourcesRequest(
            resource_type="apiGroup", resource_id=groups,
            tag=[cloudapi_models.TagResourcesRequestTag(key="env", value="sts")])

    def test_sts_token_is_accepted_and_required(self):
        groups = common.ids("g-sts", 1)
        self.assertEqual(self.client().tag_resources(self.request(groups)).status_code, 200)
        self.assertEqual(common.cloud_tags("alibaba", "apiGroup", groups[0]).get("env"), "sts")
        with self.assertRaises(ClientException) as refused:
            self.client(with_token=False).tag_resources(self.request(groups))
        self.assertEqual(refused.exception.code, "InvalidSecurityToken.MismatchWithAccessKey")


class ApiGatewayV3(unittest.TestCase):
    def client(self, secret=common.ACCESS_KEY_SECRET):
        return CloudApiClient(config(secret))

    def tag(self, ids, tags, client=None):
        request = cloudapi_models.TagResourcesRequest(
            resource_type="apiGroup", resource_id=ids,
            tag=[cloudapi_models.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()])
        return (client or self.client()).tag_resources(request)

    def list_all(self, **fields):
        entries, pages, token = [], 0, None
        while True:
            answer = self.client().list_tag_resources(
                cloudapi_models.ListTagResourcesRequest(resource_type="apiGroup", next_token=token,
                                                        **fields))
            pages += 1
            entries += answer.body.tag_resources.tag_resource
            token = answer.body.next_token
            if token in (None, "", "-1"):
                return entries, pages

    def test_tag_list_with_pagination_and_untag(self):
        groups = common.ids("g-v3", 3)
        answer = self.tag(groups, {"env": "prod", "team": "web"})
        self.assertEqual(answer.status_code, 200)
        self.assertTrue(answer.body.request_id)
        entries, pages = self.list_all(resource_id=groups)
        self.assertEqual(pages, 3)
        self.assertEqual({(e.resource_id, e.tag_key, e.tag_value) for e in entries},
                         {(g, k, v) for g in groups for k, v in (("env", "prod"), ("team", "web"))})
        by_tag, _ = self.list_all(
            tag=[cloudapi_models.ListTagResourcesRequestTag(key="team", value="web")])
        self.assertEqual({e.resource_id for e in by_tag}, set(groups))
        self.client().untag_resources(cloudapi_models.UntagResourcesRequest(
            resource_type="apiGroup", resource_id=groups, tag_key=["team"]))
        entries, _ = self.list_all(resource_id=groups)
        self.assertEqual({e.tag_key for e in entries}, {"env"})

    def test_unknown_resource(self):
        with self.assertRaises(ClientException) as caught:
            self.tag(["g-v3-4", "g-nope"], {"env": "prod"})
        self.assertEqual(caught.exception.code, "InvalidResourceId.NotFound")
        self.assertEqual(caught.exception.status_code, 404)
        self.assertEqual(common.cloud_tags("alibaba", "apiGroup", "g-v3-4"), {})

    def test_too_many_resources_and_tags(self):
        with self.assertRaises(ClientException) as caught:
            self.tag(common.ids("g-v3", 51), {"env": "prod"})
        self.assertEqual(caught.exception.code, "NumberExceed.ResourceIds")
        with self.assertRaises(ClientException) as caught:
            self.tag(["g-v3-1"], {f"k{n}": "v" for n in range(21)})
        self.assertEqual(caught.exception.code, "NumberExceed.Tags")

    def test_wrong_secret(self):
        with self.assertRaises(ClientException) as caught:
            self.tag(["g-v3-5"], {"env": "prod"}, client=self.client(common.WRONG_SECRET))
        self.assertEqual(caught.exception.code, "SignatureDoesNotMatch")
        self.assertEqual(caught.exception.status_code, 400)
        self.assertIn("ACS3-HMAC-SHA256", caught.exception.message)

    def test_replayed_nonce(self):
        with mock.patch.object(Utils, "get_nonce", return_value="sdk-suite-v3-nonce"):
            self.tag(["g-v3-5"], {"replay": "1"})
            with self.assertRaises(ClientException) as caught:
                self.tag(["g-v3-5"], {"replay": "2"})
        self.assertEqual(caught.exception.code, "SignatureNonceUsed")
        self.assertEqual(common.cloud_tags("alibaba", "apiGroup", "g-v3-5")["replay"], "1")


class EcsV3(unittest.TestCase):
    def client(self, secret=common.ACCESS_KEY_SECRET):
        return EcsClient(config(secret))

    def tag(self, ids, tags, client=None):
        request = ecs_models.TagResourcesRequest(
            region_id=common.ALIBABA_REGION, resource_type="instance", resource_id=ids,
            tag=[ecs_models.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()])
        return (client or self.client()).tag_resources(request)

    def test_tag_list_with_pagination_and_untag(self):
        instances = common.ids("i-v3", 3)
        self.tag(instances, {"env": "prod"})
        entries, pages, token = [], 0, None
        while True:
            answer = self.client().list_tag_resources(ecs_models.ListTagResourcesRequest(
                region_id=common.ALIBABA_REGION, resource_type="instance",
                tag=[ecs_models.ListTagResourcesRequestTag(key="env", value="prod")],
                next_token=token))
            pages += 1
            entries += answer.body.tag_resources.tag_resource
            token = answer.body.next_token
            if token in (None, "", "-1"):
                break
        self.assertEqual(pages, 2)
        self.assertEqual({e.resource_id for e in entries}, set(instances))
        self.client().untag_resources(ecs_models.UntagResourcesRequest(
            region_id=common.ALIBABA_REGION, resource_type="instance", resource_id=instances,
            tag_key=["env"]))
        self.assertEqual(common.cloud_tags("alibaba", "instance", "i-v3-1"), {})

    def test_unknown_resource_too_many_and_wrong_secret(self):
        with self.assertRaises(ClientException) as caught:
            self.tag(["i-v3-4", "i-nope"], {"env": "prod"})
        self.assertEqual(caught.exception.code, "InvalidResourceId.NotFound")
        with self.assertRaises(ClientException) as caught:
            self.tag(common.ids("i-v3", 51), {"env": "prod"})
        self.assertEqual(caught.exception.code, "NumberExceed.ResourceIds")
        with self.assertRaises(ClientException) as caught:
            self.tag(["i-v3-4"], {"env": "prod"}, client=self.client(common.WRONG_SECRET))
        self.assertEqual(caught.exception.code, "SignatureDoesNotMatch")

    def test_replayed_nonce(self):
        with mock.patch.object(Utils, "get_nonce", return_value="sdk-suite-ecs-nonce"):
            self.tag(["i-v3-5"], {"a": "1"})
            with self.assertRaises(ClientException) as caught:
                self.tag(["i-v3-5"], {"a": "2"})
        self.assertEqual(caught.exception.code, "SignatureNonceUsed")


def arn(product, kind, resource_id, region="*", account="*"):
    return f"arn:acs:{product}:{region}:{account}:{kind}/{resource_id}"


class TagServiceV3(unittest.TestCase):
    def client(self, secret=common.ACCESS_KEY_SECRET):
        return TagClient(config(secret))

    def tag(self, arns, tags, client=None):
        return (client or self.client()).tag_resources(tag_models.TagResourcesRequest(
            region_id=common.ALIBABA_REGION, resource_arn=arns, tags=json.dumps(tags)))

    def list_all(self, **fields):
        resources, pages, token = [], 0, None
        while True:
            answer = self.client().list_tag_resources(tag_models.ListTagResourcesRequest(
                region_id=common.ALIBABA_REGION, next_token=token, **fields))
            pages += 1
            resources += answer.body.tag_resources
            token = answer.body.next_token
            if not token:
                return resources, pages

    def test_tag_list_with_pagination_system_tags_and_untag(self):
        arns = [arn("rds", "dbinstance", i) for i in common.ids("rm-v3", 3)]
        arns.append(arn("oss", "bucket", "b-v3-1"))
        answer = self.tag(arns, {"env": "prod", "team": "data"})
        self.assertIsNone(answer.body.failed_resources)
        resources, pages = self.list_all(resource_arn=arns)
        self.assertEqual(pages, 2)
        self.assertEqual(len(resources), 4)
        uid = resources[0].resource_arn.split(":")[4]
        self.assertRegex(uid, r"^[1-9][0-9]{15}$", "answers carry the caller's account UID")
        by_arn = {r.resource_arn: {(t.key, t.value, t.category) for t in r.tags} for r in resources}
        rds = f"arn:acs:rds:{common.ALIBABA_REGION}:{uid}:dbinstance/rm-v3-1"
        self.assertEqual(by_arn[rds], {("env", "prod", "Custom"), ("team", "data", "Custom"),
                                       ("acs:rm:rgId", "rg-sdk", "System")})
        custom, _ = self.list_all(resource_arn=arns, category="Custom")
        self.assertTrue(all(t.category == "Custom" for r in custom for t in r.tags))
        # List by tag filter alone (no ResourceARN.N), across pages (issue 13).
        selected, pages = self.list_all(tags=json.dumps({"team": "data"}))
        self.assertEqual(len(selected), 4)
        self.assertGreaterEqual(pages, 2)
        # Two pairs select the resources carrying both; a filter value is 1..128 characters.
        both, _ = self.list_all(tags=json.dumps({"team": "data", "env": "prod"}))
        self.assertEqual(len(both), 4)
        neither, _ = self.list_all(tags=json.dumps({"team": "data", "env": "dev"}))
        self.assertEqual(neither, [])
        with self.assertRaises(ClientException) as caught:
            self.list_all(tags=json.dumps({"team": ""}))
        self.assertEqual(caught.exception.code, "InvalidTagValue.Malformed")
        # The account UID works in the ARN as well as `*`.
        answer = self.client().untag_resources(tag_models.UntagResourcesRequest(
            region_id=common.ALIBABA_REGION,
            resource_arn=[arn("rds", "dbinstance", i, account=uid) for i in common.ids("rm-v3", 3)],
            tag_key=["team"]))
        self.assertIsNone(answer.body.failed_resources)
        self.assertEqual(common.cloud_tags("alibaba", "rds:dbinstance", "rm-v3-1"),
                         {"env": "prod", "acs:rm:rgId": "rg-sdk"})

    def test_product_resources_through_the_tag_service(self):
        # An ECS instance tagged by ARN is the same instance the ECS API lists.
        self.tag([arn("ecs", "instance", "i-v3-4")], {"via": "tag-service"})
        answer = EcsClient(config()).list_tag_resources(ecs_models.ListTagResourcesRequest(
            region_id=common.ALIBABA_REGION, resource_type="instance", resource_id=["i-v3-4"]))
        self.assertIn(("via", "tag-service"),
                      {(e.tag_key, e.tag_value) for e in answer.body.tag_resources.tag_resource})

    def test_unknown_resource_and_quota_fail_per_resource(self):
        unknown = arn("rds", "dbinstance", "rm-nope")
        other_account = arn("oss", "bucket", "b-v3-2", account="1000000000000001")
        answer = self.tag([arn("oss", "bucket", "b-v3-2"), unknown, other_account], {"k": "v"})
        failed = {f.resource_arn: f.result.code for f in answer.body.failed_resources.failed_resource}
        self.assertEqual(failed, {unknown: "InvalidResourceId.NotFound",
                                  other_account: "InvalidResourceId.NotFound"})
        self.assertEqual(common.cloud_tags("alibaba", "oss:bucket", "b-v3-2"), {"k": "v"})
        # 1 + 10 + 9 = 20 custom tags, the most a resource may carry.
        for batch, count in (("q", 10), ("r", 9)):
            answer = self.tag([arn("oss", "bucket", "b-v3-2")],
                              {f"{batch}{n}": "v" for n in range(count)})
            self.assertIsNone(answer.body.failed_resources)
        answer = self.tag([arn("oss", "bucket", "b-v3-2")], {"one-too-many": "v"})
        self.assertEqual([f.result.code for f in answer.body.failed_resources.failed_resource],
                         ["OperationDenied.QuotaExceed"])

    def test_limits_system_tags_and_values(self):
        with self.assertRaises(ClientException) as caught:
            self.tag([arn("rds", "dbinstance", f"rm-{n}") for n in range(51)], {"k": "v"})
        self.assertEqual(caught.exception.code, "NumberExceed.ResourceARN")
        with self.assertRaises(ClientException) as caught:
            self.tag([arn("rds", "dbinstance", "rm-v3-1")], {f"k{n}": "v" for n in range(11)})
        self.assertEqual(caught.exception.code, "NumberExceed.Tags")
        with self.assertRaises(ClientException) as caught:
            self.tag([arn("rds", "dbinstance", "rm-v3-1")], {"acs:rm:rgId": "mine"})
        self.assertEqual(caught.exception.code, "InvalidTagKey.Malformed")
        with self.assertRaises(ClientException) as caught:
            self.tag([arn("rds", "dbinstance", "rm-v3-1")], {"empty": ""})
        self.assertEqual(caught.exception.code, "InvalidTagValue.Malformed")
        with self.assertRaises(ClientException) as caught:
            self.client().untag_resources(tag_models.UntagResourcesRequest(
                region_id=common.ALIBABA_REGION, resource_arn=[arn("rds", "dbinstance", "rm-v3-1")],
                tag_key=[f"k{n}" for n in range(11)]))
        self.assertEqual(caught.exception.code, "NumberExceed.TagKeys")
        self.assertEqual(common.cloud_tags("alibaba", "rds:dbinstance", "rm-v3-1")["acs:rm:rgId"],
                         "rg-sdk")

    def test_wrong_secret_and_replayed_nonce(self):
        target = [arn("rds", "dbinstance", "rm-v3-2")]
        with self.assertRaises(ClientException) as caught:
            self.tag(target, {"k": "v"}, client=self.client(common.WRONG_SECRET))
        self.assertEqual(caught.exception.code, "SignatureDoesNotMatch")
        with mock.patch.object(Utils, "get_nonce", return_value="sdk-suite-tag-nonce"):
            self.tag(target, {"k": "1"})
            with self.assertRaises(ClientException) as caught:
                self.tag(target, {"k": "2"})
        self.assertEqual(caught.exception.code, "SignatureNonceUsed")
