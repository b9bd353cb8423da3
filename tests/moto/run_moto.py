"""tagbinder against moto's server (a second implementation of AWS's Resource Groups Tagging
API): the AWS example's shape converges on it, a second run changes nothing, a prune works.

    python tests/moto/run_moto.py --binary target/debug/tagbinder

Starts `moto_server` on a free loopback port, creates two EC2 instances, an S3 bucket and an
RDS instance with boto3, writes a provider and bindings pointing at moto (ids as moto made
them: one instance by bare id, one by ARN), and runs `tagbinder apply` three times.

Where moto and tagbinder's emulator disagree, the documentation (botocore's model and the
API reference, spec/aws-resource-groups-tagging.md) decides, and the emulator follows it;
tagbinder's client works with both. Seen with moto 5.2.6 (`differences()` prints them on
every run):
- the last page of GetResources has no PaginationToken; the documentation's paginator stops
  on "", which the emulator answers. tagbinder stops on either.
- ResourceARNList with TagFilters is answered; the documentation says InvalidParameterException
  (the emulator's answer).
- TagResources on an ARN of no resource answers an empty FailedResourcesMap; the
  documentation reports failed resources there (the emulator: 404 for that ARN).
- an `aws:` key is written; the documentation reserves the prefix (the emulator refuses it).
- 21 ARNs in one TagResources are accepted; the model's limit is 20 (the emulator refuses).
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(venv_bin):
    port = free_port()
    process = subprocess.Popen([os.path.join(venv_bin, "moto_server"), "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return process, url
        except Exception:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto_server did not start")


def tags_of(client, arn):
    found = client.get_resources(ResourceARNList=[arn])["ResourceTagMappingList"]
    return {t["Key"]: t["Value"] for m in found for t in m["Tags"]}


def differences(tagging, arn):
    """Prints where moto departs from the documentation (see the module docs)."""
    notes = []
    page = tagging.get_resources(ResourceTypeFilters=["ec2:instance"])
    if page.get("PaginationToken") != "":
        notes.append(f"last page token {page.get('PaginationToken')!r}, documented \"\"")
    try:
        tagging.get_resources(ResourceARNList=[arn], TagFilters=[{"Key": "x"}])
        notes.append("ResourceARNList with TagFilters answered, documented InvalidParameterException")
    except Exception:
        pass
    unknown = arn.rsplit("/", 1)[0] + "/i-00000000000000000"
    failed = tagging.tag_resources(ResourceARNList=[unknown], Tags={"a": "b"})["FailedResourcesMap"]
    if not failed:
        notes.append("an unknown ARN is not in FailedResourcesMap")
    for note in notes:
        print(f"note: moto differs from the documentation: {note}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION=REGION)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    process, url = start_moto(os.path.dirname(sys.executable))
    try:
        ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION)
        image = ec2.describe_images()["Images"][0]["ImageId"]
        instances = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2,
                                      TagSpecifications=[{"ResourceType": "instance",
                                                          "Tags": [{"Key": "team", "Value": "web"},
                                                                   {"Key": "created-by", "Value": "terraform"}]}])
        first, second = [i["InstanceId"] for i in instances["Instances"]]
        s3 = boto3.client("s3", endpoint_url=url, region_name=REGION)
        s3.create_bucket(Bucket="tagbinder-demo-media")
        rds = boto3.client("rds", endpoint_url=url, region_name=REGION)
        rds.create_db_instance(DBInstanceIdentifier="orders-prod", DBInstanceClass="db.t3.micro",
                               Engine="postgres", MasterUsername="u", MasterUserPassword="password1",
                               AllocatedStorage=20)
        arn = lambda i: f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{i}"
        provider = f"""apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {{name: aws-moto}}
spec:
  cloud: aws
  region: {REGION}
  endpoint: {url}
  aws: {{accountId: "{ACCOUNT}"}}
"""
        def binding(name, namespace, resource_type, ids, tags, selector=None):
            target = (f"  resourceSelector: {{matchTags: {selector}}}\n" if selector
                      else f"  resourceIds: {ids}\n")
            return (f"---\napiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n"
                    f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
                    f"  providerRef: {{name: aws-moto}}\n  resourceType: {resource_type}\n"
                    f"{target}  tags: {tags}\n")
        bindings = (binding("web-instances", "team-web", "ec2:instance", [first, arn(second)],
                            "{env: prod, owner: team-web}")
                    + binding("orders-db", "team-orders", "rds:db", ["orders-prod"],
                              "{env: prod, owner: team-orders, backup: daily}")
                    + binding("media-bucket", "team-media", "s3", ["tagbinder-demo-media"],
                              "{env: prod, owner: team-media}")
                    + binding("cost-center", "platform", "ec2:instance", None,
                              "{cost-center: cc-1234}", selector="{team: web}"))
        work = tempfile.mkdtemp()
        files = os.path.join(work, "manifests")
        os.mkdir(files)
        with open(os.path.join(files, "provider.yaml"), "w") as out:
            out.write(provider)
        with open(os.path.join(files, "bindings.yaml"), "w") as out:
            out.write(bindings)

        def apply():
            done = subprocess.run([args.binary, "apply", "-f", "manifests"], cwd=work,
                                  capture_output=True, text=True, timeout=120)
            print(done.stdout, done.stderr, sep="\n", flush=True)
            return done

        failures = []
        def check(condition, what):
            print(("ok   " if condition else "FAIL ") + what, flush=True)
            if not condition:
                failures.append(what)

        first_run = apply()
        check(first_run.returncode == 0, "the first apply succeeds")
        check("4 of 4 binding(s) Ready" in first_run.stdout, "every binding is Ready")
        tagging = boto3.client("resourcegroupstaggingapi", endpoint_url=url, region_name=REGION)
        web = tags_of(tagging, arn(first))
        check(web.get("owner") == "team-web" and web.get("cost-center") == "cc-1234"
              and web.get("created-by") == "terraform", f"the first instance's tags: {web}")
        check(tags_of(tagging, arn(second)).get("cost-center") == "cc-1234", "the selector")
        db_arn = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders-prod"
        check(tags_of(tagging, db_arn).get("backup") == "daily", "the RDS instance")
        check(tags_of(tagging, "arn:aws:s3:::tagbinder-demo-media").get("owner") == "team-media",
              "the S3 bucket")
        differences(tagging, arn(first))
        second_run = apply()
        check(second_run.returncode == 0 and "nothing changed" in second_run.stdout,
              "a second apply changes nothing")
        with open(os.path.join(files, "bindings.yaml"), "w") as out:
            out.write(bindings.replace(", backup: daily", ""))
        third_run = apply()
        check(third_run.returncode == 0 and "backup=daily (pruned)" in third_run.stdout,
              "the prune is reported")
        check("backup" not in tags_of(tagging, db_arn) and
              tags_of(tagging, db_arn).get("owner") == "team-orders", "the prune")
        print(f"{'moto: ' + str(len(failures)) + ' failed' if failures else 'moto: all passed'}")
        return 1 if failures else 0
    finally:
        process.kill()


if __name__ == "__main__":
    sys.exit(main())
