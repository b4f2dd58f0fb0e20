#!/usr/bin/python3
"""Seeds for oci_image_fuzzer (its header says the input form): the
documents of a real image made by umoci (index.json, manifest, config) and
converted by skopeo (a docker-archive's manifest.json and config), with
their digests turned into the fuzzer's $N references; plus an image index
choosing between platforms and a set of metadata tags.
    fuzz/stack/make_oci_seeds.py [DIR]   (default: seeds/oci_image_fuzzer/)
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "seeds", "oci_image_fuzzer")
SEP = "\n--\n"


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1])) as f:
        return f.read()


def refer(text, numbered):
    """Digests of the numbered documents -> $N."""
    for n, d in numbered.items():
        text = text.replace(d.split(":")[1], f"${n}")
    return text


def seed(name, head, docs):
    with open(os.path.join(OUT, name), "w") as f:
        f.write(SEP.join([head] + docs))


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        lay, b = f"{t}/img", f"{t}/bundle"
        run("umoci", "init", "--layout", lay)
        run("umoci", "new", "--image", f"{lay}:t")
        run("umoci", "config", "--image", f"{lay}:t", "--config.env", "FOO=bar",
            "--config.entrypoint", "/bin/sh", "--config.cmd", "-c", "--config.workingdir", "/srv",
            "--config.user", "1000:1000", "--config.label", "org.example=yes")
        run("umoci", "unpack", "--rootless", "--image", f"{lay}:t", b)
        with open(f"{b}/rootfs/hello", "w") as f:
            f.write("hello\n")
        run("umoci", "repack", "--image", f"{lay}:t", b)
        with open(f"{lay}/index.json") as f:
            index = f.read()
        mdesc = json.loads(index)["manifests"][0]
        manifest = blob(lay, mdesc["digest"])
        cdesc = json.loads(manifest)["config"]
        config = blob(lay, cdesc["digest"])
        num = {1: mdesc["digest"], 2: cdesc["digest"]}
        seed("layout", "oci linux/amd64 t", [refer(index, num), refer(manifest, num), config])
        seed("layout-untagged", "oci linux/amd64", [refer(index, num), refer(manifest, num),
                                                     config])
        # An image index (as a multi-arch image has) choosing by platform.
        mdesc_ref = dict(mdesc)
        mdesc_ref.pop("annotations", None)
        entries = []
        for plat in ({"os": "linux", "architecture": "arm64", "variant": "v8"},
                     {"os": "linux", "architecture": "amd64"}):
            e = dict(mdesc_ref, digest="sha256:$2")
            e["platform"] = plat
            entries.append(e)
        idx = json.dumps({"schemaVersion": 2,
                          "mediaType": "application/vnd.oci.image.index.v1+json",
                          "manifests": entries}, indent=2)
        top = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:$1",
            "annotations": {"org.opencontainers.image.ref.name": "t"}}]})
        num3 = {2: mdesc["digest"], 3: cdesc["digest"]}
        for plat in ("linux/arm64/v8", "linux/amd64", "linux/s390x"):
            seed("index-" + plat.replace("/", "-"), f"oci {plat} t",
                 [top, idx, refer(manifest, num3), config])
        # The same tag twice, one per platform, straight in index.json.
        two = json.loads(index)
        two["manifests"] = [dict(e, digest="sha256:$1") for e in entries]
        for e in two["manifests"]:
            e["annotations"] = {"org.opencontainers.image.ref.name": "t"}
        seed("index-json-platforms", "oci linux/amd64 t",
             [json.dumps(two), refer(manifest, num), config])
        # docker-archive, as skopeo writes it.
        da = f"{t}/d.tar"
        run("skopeo", "copy", f"oci:{lay}:t", f"docker-archive:{da}:example/img:t")
        with tarfile.open(da) as tar:
            dm = tar.extractfile("manifest.json").read().decode()
            cpath = json.loads(dm)[0]["Config"]
            dconfig = tar.extractfile(cpath).read().decode()
        chex = os.path.basename(cpath).removesuffix(".json")
        seed("docker", "docker linux/amd64 example/img:t",
             [dm.replace(chex, "$1"), dconfig])
        seed("docker-untagged", "docker linux/amd64", [dm.replace(chex, "$1"), dconfig])
    # The tags a built entry keeps (spec/oci.md "Metadata").
    seed("tags", "tags", ["\n".join([
        "oci.digest=sha256:" + "ab" * 32, "oci.image-id=sha256:" + "cd" * 32,
        "oci.platform=linux/amd64",
        'oci.config.0={"Cmd":["-c"],"Entrypoint":["/bin/sh"],"Env":["FOO=bar"],',
        'oci.config.1="Labels":{"org.example":"yes"},"User":"1000:1000","WorkingDir":"/srv"}',
        "note=a user tag"])])


if __name__ == "__main__":
    main()
