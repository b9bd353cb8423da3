"""aliyun-python-sdk-core 2.16.1, CommonRequest (V1 signature, HMAC-SHA1), as a client of the
emulator: API Gateway 2016-07-14, ECS 2014-05-26 and the Tag service 2018-08-28."""

import json
import unittest
from unittest import mock

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
import aliyunsdkcore.auth.composer.rpc_signature_composer as composer

import common


def client(secret=common.ACCESS_KEY_SECRET):
    # NB: no automatic retry, so that every answer reaches the test as the SDK parsed it.
    return AcsClient(common.ACCESS_KEY_ID, secret, common.ALIBABA_REGION, auto_retry=False)


def request(version, action, params, method="POST", body=None):
    req = CommonRequest()
    # NB: the SDK's endpoint override: set_domain, and plain HTTP.
    req.set_domain(common.host_port())
    req.set_protocol_type("http")
    req.set_method(method)
    req.set_accept_format("json")
    req.set_version(version)
    req.set_action_name(action)
    for name, value in params.items():
        req.add_query_param(name, value)
    for name, value in (body or {}).items():
        req.add_body_params(name, value)
    return req


def call(req, secret=common.ACCESS_KEY_SECRET):
    return json.loads(client(secret).do_action_with_exception(req))


def indexed(prefix, values):
    return {f"{prefix}.{n}": v for n, v in enumerate(values, start=1)}


def tag_params(resource_type, ids, tags):
    params = {"ResourceType": resource_type, "RegionId": common.ALIBABA_REGION}
    params.update(indexed("ResourceId", ids))
    for n, (key, value) in enumerate(tags.items(), start=1):
        params[f"Tag.{n}.Key"] = key
        params[f"Tag.{n}.Value"] = value
    return params


def list_all(version, params):
    """Every entry of ListTagResources, following NextToken to the end; and the page count."""
    entries, pages, token = [], 0, None
    while True:
        page_params = dict(params)
        if token:
            page_params["NextToken"] = token
        answer = call(request(version, "ListTagResources", page_params))
        pages += 1
        entries += answer["TagResources"]["TagResource"]
        token = answer.get("NextToken")
        if token in (None, "", "-1"):
            return entries, pages


class ApiGatewayV1(unittest.TestCase):
    version = "2016-07-14"
    kind = "apiGroup"

    def test_tag_list_with_pagination_and_untag(self):
        groups = common.ids("g-v1", 3)
        answer = call(request(self.version, "TagResources",
                              tag_params(self.kind, groups, {"env": "prod", "team": "web"})))
        self.assertTrue(answer["RequestId"])
        params = {"ResourceType": self.kind, **indexed("ResourceId", groups)}
        entries, pages = list_all(self.version, params)
        self.assertEqual(len(entries), 6)
        self.assertEqual(pages, 3, "6 entries at 2 per page")
        self.assertEqual({(e["ResourceId"], e["TagKey"], e["TagValue"]) for e in entries},
                         {(g, k, v) for g in groups for k, v in (("env", "prod"), ("team", "web"))})
        # List by tag filter alone (no ResourceId.N), across pages (issue 13).
        by_tag, _ = list_all(self.version, {"ResourceType": self.kind, "Tag.1.Key": "team",
                                            "Tag.1.Value": "web"})
        self.assertEqual({e["ResourceId"] for e in by_tag}, set(groups))
        untag = {"ResourceType": self.kind, **indexed("ResourceId", groups), "TagKey.1": "team"}
        call(request(self.version, "UntagResources", untag))
        entries, _ = list_all(self.version, params)
        self.assertEqual({e["TagKey"] for e in entries}, {"env"})

    def test_region_in_the_body_and_in_the_query(self):
        # NB: the SDK adds RegionId to the query when the caller put it in the body, and signs
        # the body's value: the emulator must accept it.
        req = request(self.version, "TagResources",
                      {"ResourceType": self.kind, "ResourceId.1": "g-v1-4", "Tag.1.Key": "k",
                       "Tag.1.Value": "v"},
                      body={"RegionId": common.ALIBABA_REGION})
        self.assertTrue(call(req)["RequestId"])
        self.assertEqual(common.cloud_tags("alibaba", self.kind, "g-v1-4"), {"k": "v"})

    def test_unknown_resource(self):
        with self.assertRaises(ServerException) as caught:
            call(request(self.version, "TagResources",
                         tag_params(self.kind, ["g-v1-5", "g-nope"], {"env": "prod"})))
        self.assertEqual(caught.exception.get_error_code(), "InvalidResourceId.NotFound")
        self.assertEqual(caught.exception.get_http_status(), 404)
        self.assertEqual(common.cloud_tags("alibaba", self.kind, "g-v1-5"), {}, "all or nothing")

    def test_too_many_resources_and_tags(self):
        with self.assertRaises(ServerException) as caught:
            call(request(self.version, "TagResources",
                         tag_params(self.kind, common.ids("g-v1", 51), {"env": "prod"})))
        self.assertEqual(caught.exception.get_error_code(), "NumberExceed.ResourceIds")
        tags = {f"k{n}": "v" for n in range(21)}
        with self.assertRaises(ServerException) as caught:
            call(request(self.version, "TagResources", tag_params(self.kind, ["g-v1-1"], tags)))
        self.assertEqual(caught.exception.get_error_code(), "NumberExceed.Tags")

    def test_wrong_secret(self):
        req = request(self.version, "ListTagResources",
                      {"ResourceType": self.kind, "ResourceId.1": "g-v1-1"})
        with self.assertRaises(ServerException) as caught:
            call(req, secret=common.WRONG_SECRET)
        self.assertEqual(caught.exception.get_error_code(), "SignatureDoesNotMatch")
        self.assertEqual(caught.exception.get_http_status(), 400)
        # NB: the server's string to sign is the SDK's own (the SDK compares the two to blame
        # the secret, but for a CommonRequest it compares with the wrapper's empty copy).
        server = caught.exception.get_error_msg().split("server string to sign is:", 1)[1]
        self.assertEqual(server, req.request.string_to_sign)

    def test_replayed_nonce(self):
        params = {"ResourceType": self.kind, "ResourceId.1": "g-v1-1"}
        with mock.patch.object(composer.helper, "get_uuid", return_value="sdk-suite-v1-nonce"):
            call(request(self.version, "ListTagResources", params))
            with self.assertRaises(ServerException) as caught:
                call(request(self.version, "ListTagResources", params))
        self.assertEqual(caught.exception.get_error_code(), "SignatureNonceUsed")


class EcsV1(unittest.TestCase):
    version = "2014-05-26"

    def test_tag_list_untag(self):
        instances = common.ids("i-v1", 3)
        call(request(self.version, "TagResources",
                     tag_params("instance", instances, {"env": "prod"}), method="GET"))
        entries, pages = list_all(self.version, {"ResourceType": "instance",
                                                 "RegionId": common.ALIBABA_REGION,
                                                 **indexed("ResourceId", instances)})
        self.assertEqual(len(entries), 3)
        self.assertEqual(pages, 2)
        call(request(self.version, "UntagResources",
                     {"ResourceType": "instance", "RegionId": common.ALIBABA_REGION,
                      **indexed("ResourceId", instances), "TagKey.1": "env"}))
        self.assertEqual(common.cloud_tags("alibaba", "instance", "i-v1-1"), {})


class TagServiceV1(unittest.TestCase):
    version = "2018-08-28"

    def test_tag_list_untag_and_a_failed_resource(self):
        arns = [f"arn:acs:rds:{common.ALIBABA_REGION}:*:dbinstance/{i}"
                for i in common.ids("rm-v1", 3)]
        unknown = "arn:acs:rds:*:*:dbinstance/rm-nope"
        answer = call(request(self.version, "TagResources",
                              {"RegionId": common.ALIBABA_REGION,
                               **indexed("ResourceARN", arns + [unknown]),
                               "Tags": json.dumps({"env": "prod"})}))
        failed = answer["FailedResources"]["FailedResource"]
        self.assertEqual([(f["ResourceARN"], f["Result"]["Code"]) for f in failed],
                         [(unknown, "InvalidResourceId.NotFound")])
        listed, token, pages = [], None, 0
        while True:
            params = {"RegionId": common.ALIBABA_REGION, **indexed("ResourceARN", arns)}
            if token:
                params["NextToken"] = token
            answer = call(request(self.version, "ListTagResources", params))
            pages += 1
            listed += answer["TagResources"]
            token = answer["NextToken"]
            if not token:
                break
        self.assertEqual(pages, 2)
        self.assertEqual(len(listed), 3)
        for resource in listed:
            self.assertEqual(resource["Tags"], [{"Key": "env", "Value": "prod", "Category": "Custom"}])
        answer = call(request(self.version, "UntagResources",
                              {"RegionId": common.ALIBABA_REGION, **indexed("ResourceARN", arns),
                               "TagKey.1": "env"}))
        self.assertNotIn("FailedResources", answer)
        self.assertEqual(common.cloud_tags("alibaba", "rds:dbinstance", "rm-v1-1"), {})
