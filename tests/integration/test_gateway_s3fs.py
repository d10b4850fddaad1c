"""zarr through fsspec/s3fs, the way the project's users write, with the
gateway verifying signatures: arrays and groups written, overwritten,
resized and removed (s3fs's Quiet DeleteObjects), read back; .checksum
objects read with s3fs; a second writer's 409 as s3fs shows it.  Every
step ends with tree == listing and mirror == documents.

s3fs and its two pure-Python dependencies are not in Debian: they come
from ../shared/pylib (see its README), with Debian's aiohttp and wrapt."""

import json
import sys

import numpy as np
import pytest
import zarr

from conftest import REPO_ROOT

PYLIB = REPO_ROOT.parent / "shared" / "pylib"
if str(PYLIB) not in sys.path:
    sys.path.insert(0, str(PYLIB))

import s3fs  # noqa: E402  (from PYLIB)


def fs_for(gw, user="alice"):
    u = gw.rgw.users[user]
    return s3fs.S3FileSystem(
        key=u.access_key, secret=u.secret_key, use_listings_cache=False,
        client_kwargs={"endpoint_url": gw.url,
                       "region_name": gw.rgw.region},
        config_kwargs={"retries": {"max_attempts": 1}})


def test_s3fs_zarr(gateway, bucket):
    gw = gateway(workers=2)
    fs = fs_for(gw)
    root = "%s/zarr/sf/" % bucket
    store = zarr.storage.FSStore("s3://" + root, fs=fs)
    rng = np.random.default_rng(7)
    a = rng.integers(0, 1000, size=(60, 40), dtype="int32")

    # 1. a group, an array, a nested group with a "/" array
    g = zarr.group(store=store)
    g.attrs["by"] = "s3fs"
    arr = g.create_dataset("a", shape=a.shape, chunks=(10, 10), dtype="i4")
    arr[:] = a
    sub = g.create_group("sub")
    x = sub.create_dataset("x", shape=(8, 8), chunks=(4, 4), dtype="f8",
                           dimension_separator="/")
    x[:] = 1.5
    tree = gw.assert_consistent(bucket, "sf")
    assert "a" in tree and "sub/x/1" in tree

    r = zarr.open_group(zarr.storage.FSStore("s3://" + root, fs=fs_for(gw)),
                        mode="r")
    np.testing.assert_array_equal(r["a"][:], a)
    assert r.attrs["by"] == "s3fs"

    # 2. overwrite a region, then resize (shrinking drops chunks)
    a[0:15, 0:15] = -7
    zarr.open_group(store=store)["a"][0:15, 0:15] = -7
    gw.assert_consistent(bucket, "sf")
    zarr.open_group(store=store)["a"].resize(30, 40)
    assert not any(k.startswith("a/3.") for k in store)
    gw.assert_consistent(bucket, "sf")
    np.testing.assert_array_equal(
        zarr.open_group(store=store, mode="r")["a"][:], a[:30])

    # 3. remove an array: s3fs's rm, one Quiet DeleteObjects
    del zarr.open_group(store=store)["sub/x"]
    assert not fs.exists(root + "sub/x/.zarray")
    tree = gw.assert_consistent(bucket, "sf")
    assert "sub/x" not in tree

    # 3b. and a whole group with its arrays (written first, then removed)
    extra = zarr.open_group(store=store).create_group("gone")
    extra.create_dataset("y", shape=(6,), chunks=(2,), dtype="i2")[:] = 3
    tree = gw.assert_consistent(bucket, "sf")
    assert "gone/y" in tree
    del zarr.open_group(store=store)["gone"]
    assert "gone" not in zarr.open_group(store=store, mode="r")
    tree = gw.assert_consistent(bucket, "sf")
    assert not any(d == "gone" or d.startswith("gone/") for d in tree)

    # 4. the .checksum objects, read with s3fs, agree with the tree
    doc = json.loads(fs.cat("%s/zarr-checksums/sf/.checksum" % bucket))
    assert doc["digest"] == tree["."]
    docs = gw.assert_mirror(bucket, "sf")
    assert set(docs) >= {"", "a", "sub"}


def test_s3fs_sees_409(gateway, bucket):
    """bob writes through s3fs while alice's batch is active: s3fs maps
    the 409 OperationAborted to OSError(EBUSY) with the gateway's message
    and does not retry it (docs/security.md)."""
    import errno
    gw = gateway(workers=1)
    gw.client("alice").put_object(Bucket=bucket, Key="zarr/c9/a", Body=b"a")
    with pytest.raises(OSError) as e:
        fs_for(gw, "bob").pipe("%s/zarr/c9/b" % bucket, b"b")
    assert e.value.errno == errno.EBUSY
    assert "another upload batch is active" in str(e.value)
    gw.assert_consistent(bucket, "c9")
