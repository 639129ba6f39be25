#!/usr/bin/env python3
"""presign.py URLS_TSV BUCKET OUT: for each line of URLS_TSV (recording id, extension, media
URL) writes "media URL<TAB>presigned PUT URL for peer/<id>.<ext>" to OUT, for the pipe-put
row (curl GET | curl PUT), which then needs no request signing of its own. Reads the store
endpoint and keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."""
import os, sys
import boto3
from botocore.config import Config

urls, bucket, out = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
with open(urls) as f, open(out, "w") as o:
    for line in f:
        rid, ext, url = line.rstrip("\n").split("\t")
        put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"peer/{rid}.{ext}"},
                                        ExpiresIn=86400)
        o.write(f"{url}\t{put}\n")
