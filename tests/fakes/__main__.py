"""``python -m tests.fakes``: run the fake Azure (ARM + BES + classic + Azure ML v2) and Azurite.

Why: a newcomer with no Azure account should be able to point the reconciler's Azure provider
(or curl, or the Azure SDK) at something real within minutes. This starts Azurite and the fake
on loopback, optionally seeds web services, endpoints, training services and blobs from a JSON
file (see ``tests/fakes/seed.example.json``), prints every URL, the CA bundle and the tokens
and keys to use, and runs until Ctrl-C.

    python -m tests.fakes --seed tests/fakes/seed.example.json
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from .arm import ThrottleConfig
from .azurite import Azurite, AzuriteError, skip_reason
from .server import FakeAzure

DEFAULT_TOKEN_HINT = "any non-empty bearer token (e.g. 'fake-arm-token')"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m tests.fakes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--seed", type=Path, help="JSON seed file (see seed.example.json)")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port (default: any free port)")
    ap.add_argument("--no-azurite", action="store_true", help="do not start Azurite")
    ap.add_argument("--azurite-location", help="Azurite data directory (default: a temp dir)")
    ap.add_argument("--arm-token", help="accept only this ARM bearer token (default: any)")
    ap.add_argument(
        "--lro-polls",
        type=int,
        default=1,
        help="operation polls answered InProgress before Succeeded (default 1)",
    )
    ap.add_argument("--no-throttle", action="store_true", help="disable ARM throttling")
    ap.add_argument(
        "--ready-file", type=Path, help="also write the addresses and credentials here as JSON"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    azurite: Azurite | None = None
    if not args.no_azurite:
        reason = skip_reason()
        if reason:
            print(f"error: {reason} (or pass --no-azurite)", file=sys.stderr)
            return 1
        azurite = Azurite(location=args.azurite_location)
        try:
            azurite.start()
        except AzuriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    arm_options: dict[str, Any] = {"lro_polls": args.lro_polls}
    azureml_options: dict[str, Any] = {"lro_polls": args.lro_polls}
    if args.arm_token:
        arm_options["accepted_tokens"] = {args.arm_token}
        azureml_options["accepted_tokens"] = {args.arm_token}
    if args.no_throttle:
        arm_options["throttle"] = ThrottleConfig(enabled=False)
    fake = FakeAzure(
        port=args.port,
        arm_options=arm_options,
        azureml_options=azureml_options,
        blob_connection_string=azurite.connection_string if azurite else None,
    )
    try:
        fake.start()
        seeded: dict[str, Any] = {}
        if args.seed:
            seeded = fake.seed(
                json.loads(args.seed.read_text("utf-8")), base_dir=args.seed.resolve().parent
            )
        info = {
            "armBaseUrl": fake.arm_base_url,
            "besBaseUrl": fake.bes_base_url,
            "classicBaseUrl": fake.classic_base_url,
            "caBundle": fake.ca_bundle_path,
            "armToken": args.arm_token or DEFAULT_TOKEN_HINT,
            "blobEndpoint": azurite.blob_endpoint if azurite else None,
            "blobConnectionString": azurite.connection_string if azurite else None,
            "seeded": seeded,
        }
        _print(info)
        if args.ready_file:
            args.ready_file.write_text(json.dumps(info, indent=2), "utf-8")
        while not stop.wait(0.5):  # seconds; wake regularly so signals are handled promptly
            pass
        print("\nstopping…")
    finally:
        fake.close()
        if azurite is not None:
            azurite.close()
    return 0


def _print(info: dict[str, Any]) -> None:
    lines = [
        "retrain fake Azure is running on loopback (Ctrl-C to stop)",
        f"  Resource Manager base URL : {info['armBaseUrl']}",
        f"  BES base URL              : {info['besBaseUrl']}",
        f"  Classic management URL    : {info['classicBaseUrl']}",
        f"  CA bundle (verify= / connection_verify=): {info['caBundle']}",
        f"  ARM bearer token          : {info['armToken']}",
    ]
    if info["blobEndpoint"]:
        lines += [
            f"  Blob endpoint (Azurite)   : {info['blobEndpoint']}",
            f"  Blob connection string    : {info['blobConnectionString']}",
        ]
    seeded = info["seeded"]
    for rid in seeded.get("arm", []):
        lines.append(f"  ARM web service           : {rid}")
    for ws in seeded.get("classic", []):
        lines.append(f"  Classic workspace         : {ws['workspace']}  token: {ws['token']}")
    for svc in seeded.get("bes", []):
        lines.append(f"  BES training service      : {svc['url']}  api key: {svc['apiKey']}")
    for ws_id in seeded.get("azureml", {}).get("workspaces", []):
        lines.append(f"  Azure ML v2 workspace     : {ws_id}")
    for ep in seeded.get("azureml", {}).get("endpoints", []):
        lines.append(f"  Azure ML online endpoint  : {ep['scoringUri']}  key: {ep['primaryKey']}")
    lines.append(
        f"  try: curl --cacert {info['caBundle']} -H 'Authorization: Bearer x' "
        f"'{info['armBaseUrl']}/subscriptions/<sub>/resourceGroups/<rg>/providers/"
        f"Microsoft.MachineLearning/webServices?api-version=2017-01-01'"
    )
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
