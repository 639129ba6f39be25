#!/usr/bin/env python3
"""The boto3 peer: a thread pool streaming each URL (urllib) into upload_fileobj.
Usage: peer_boto3.py URLS_TSV BUCKET CONCURRENCY (endpoint and keys from AWS_* env)."""
import concurrent.futures, os, sys, urllib.request
import boto3
from botocore.config import Config

urls, bucket, conc = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=conc))

def one(line):
    rid, ext, url = line.rstrip("\n").split("\t")
    with urllib.request.urlopen(url) as r:
        s3.upload_fileobj(r, bucket, f"peer/{rid}.{ext}")

with open(urls) as f:
    lines = f.readlines()
with concurrent.futures.ThreadPoolExecutor(conc) as ex:
    for fut in concurrent.futures.as_completed([ex.submit(one, l) for l in lines]):
        fut.result()
