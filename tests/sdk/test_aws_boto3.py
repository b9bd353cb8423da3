"""boto3 (the official AWS SDK for Python) as a client of the emulator's Resource Groups
Tagging API and STS (spec aws-resource-groups-tagging.md): SigV4 as botocore signs it, JSON
1.1 as botocore speaks it, the paginator that stops on the empty PaginationToken, per-ARN
failures, the documented exclusions, and the IRSA path (AssumeRoleWithWebIdentity, then the
tagging API with the temporary credentials).
"""

import base64
import json
import time
import unittest

import boto3
import botocore.config
from botocore.exceptions import ClientError

import common

CONFIG = botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10)


def session(secret=common.ACCESS_KEY_SECRET, key=common.ACCESS_KEY_ID, token=None):
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                 aws_session_token=token, region_name=common.AWS_REGION)


def tagging(**kwargs):
    return session(**kwargs).client("resourcegroupstaggingapi", endpoint_url=common.url(),
                                    config=CONFIG)


def sts(**kwargs):
    return session(**kwargs).client("sts", endpoint_url=common.url(), config=CONFIG)


def code(error):
    return error.exception.response["Error"]["Code"]


class Boto3Tagging(unittest.TestCase):
    def test_the_paginator_lists_every_page_and_stops_on_the_empty_token(self):
        pages = list(tagging().get_paginator("get_resources").paginate(
            TagFilters=[{"Key": "suite", "Values": ["boto3"]}],
            ResourceTypeFilters=["ec2:instance"], ResourcesPerPage=2))
        self.assertEqual(len(pages), 3)
        self.assertEqual(pages[-1]["PaginationToken"], "")
        arns = [m["ResourceARN"] for p in pages for m in p["ResourceTagMappingList"]]
        self.assertEqual(sorted(arns), sorted(common.aws_instance(i) for i in common.ids("i-b3", 5)))
        keys = {t["Key"] for p in pages for m in p["ResourceTagMappingList"] for t in m["Tags"]}
        self.assertIn("aws:cloudformation:stack-name", keys)

    def test_writes_report_failures_per_arn(self):
        client = tagging()
        arns = [common.aws_instance("i-b3-1"), common.aws_instance("i-b3-nope")]
        answer = client.tag_resources(ResourceARNList=arns, Tags={"team": "sdk"})
        failed = answer["FailedResourcesMap"]
        self.assertEqual(list(failed), [arns[1]])
        self.assertEqual(failed[arns[1]]["ErrorCode"], "InvalidParameterException")
        listed = client.get_resources(ResourceARNList=arns[:1])["ResourceTagMappingList"]
        self.assertIn({"Key": "team", "Value": "sdk"}, listed[0]["Tags"])
        answer = client.untag_resources(ResourceARNList=arns[:1], TagKeys=["team"])
        self.assertEqual(answer["FailedResourcesMap"], {})
        self.assertNotIn("team", common.cloud_tags("aws", "ec2:instance", arns[0]))

    def test_the_documented_exclusions_and_limits_are_invalid_parameters(self):
        client = tagging()
        with self.assertRaises(ClientError) as error:
            client.get_resources(ResourceARNList=[common.aws_instance("i-b3-1")],
                                 TagFilters=[{"Key": "suite"}])
        self.assertEqual(code(error), "InvalidParameterException")
        with self.assertRaises(ClientError) as error:
            client.tag_resources(ResourceARNList=[common.aws_instance("i-b3-1")],
                                 Tags={"aws:mine": "x"})
        self.assertEqual(code(error), "InvalidParameterException")

    def test_a_wrong_secret_is_an_invalid_signature(self):
        with self.assertRaises(ClientError) as error:
            tagging(secret=common.WRONG_SECRET).get_resources()
        self.assertEqual(code(error), "InvalidSignatureException")


def web_identity_token():
    part = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    claims = {"sub": "system:serviceaccount:tagbinder-system:tagbinder",
              "exp": int(time.time()) + 3600}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


class Boto3Sts(unittest.TestCase):
    def test_get_caller_identity_names_the_account(self):
        answer = sts().get_caller_identity()
        self.assertEqual(answer["Account"], common.AWS_ACCOUNT)
        self.assertEqual(answer["Arn"], f"arn:aws:iam::{common.AWS_ACCOUNT}:user/{common.ACCESS_KEY_ID}")

    def test_web_identity_credentials_reach_the_tagging_api(self):
        answer = sts().assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{common.AWS_ACCOUNT}:role/tagbinder",
            RoleSessionName="tagbinder", WebIdentityToken=web_identity_token())
        credentials = answer["Credentials"]
        self.assertTrue(credentials["AccessKeyId"].startswith("ASIA"))
        client = tagging(key=credentials["AccessKeyId"], secret=credentials["SecretAccessKey"],
                         token=credentials["SessionToken"])
        listed = client.get_resources(ResourceARNList=[common.aws_instance("i-b3-2")])
        self.assertEqual(len(listed["ResourceTagMappingList"]), 1)
        caller = sts(key=credentials["AccessKeyId"], secret=credentials["SecretAccessKey"],
                     token=credentials["SessionToken"]).get_caller_identity()
        self.assertEqual(caller["Arn"],
                         f"arn:aws:sts::{common.AWS_ACCOUNT}:assumed-role/tagbinder/tagbinder")
