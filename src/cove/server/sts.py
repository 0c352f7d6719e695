"""Scoped, short-lived credentials for the official SDK's context uploads (STS AssumeRole).

With COVE_OBJECT_STORAGE_ROLE_ARN set, push-access does not hand out the
store's own key: the server assumes that role for 15 minutes with a session
policy that narrows it to the caller's prefix (`<organizationId>/*`), plus
listing the bucket, without which a store answers a HEAD of a missing
object 403 instead of 404 and the SDK's "is it uploaded yet?" fails. AWS,
MinIO and Ceph RGW serve AssumeRole; the store enforces the policy, Cove
only asks for it. botocore signs the call (the `s3` extra).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cove.settings import Settings
from cove.wire.errors import CoveError
from cove.wire.protocol import StorageAccess

DURATION = 900  # seconds: STS's minimum, and longer than the SDK retries an upload
# Upload (single and multipart) and HEAD/GET under the prefix, nothing else.
OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]


class StsError(CoveError):
    """The store's STS refused or failed: the message says what it answered."""

    status = 502
    code = "OBJECT_STORAGE_STS_ERROR"


def session_policy(bucket: str, org: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": OBJECT_ACTIONS,
                "Resource": [f"arn:aws:s3:::{bucket}/{org}/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
        ],
    }


class RoleCredentials:
    """AssumeRole on the store's STS endpoint, one call per push-access."""

    def __init__(self, settings: Settings) -> None:
        import botocore.session

        s = settings
        self.settings = s
        ca = s.object_storage_ca_bundle
        self.client = botocore.session.Session().create_client(
            "sts",
            endpoint_url=s.object_storage_sts_url or s.object_storage_url,
            region_name=s.object_storage_region,
            aws_access_key_id=s.object_storage_access_key,
            aws_secret_access_key=s.object_storage_secret_key,
            verify=str(ca) if ca is not None else True,
        )

    async def for_org(self, org: str) -> StorageAccess:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        policy = json.dumps(session_policy(s.object_storage_bucket, org))
        try:
            answer = await asyncio.to_thread(
                self.client.assume_role,
                RoleArn=s.object_storage_role_arn,
                RoleSessionName=f"cove-{org[:24]}",
                DurationSeconds=DURATION,
                Policy=policy,
            )
        except (BotoCoreError, ClientError) as exc:  # refused, or not reached
            raise StsError(f"the object store's STS refused AssumeRole: {exc}") from exc
        creds = answer["Credentials"]
        return StorageAccess(
            access_key=creds["AccessKeyId"],
            secret=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            storage_url=s.object_storage_url,
            organization_id=org,
            bucket=s.object_storage_bucket,
            region=s.object_storage_region,
        )
