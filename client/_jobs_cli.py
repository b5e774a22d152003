"""`dreamctl jobs list|get|watch|cancel`, and the --detach / --request-id flags of the render commands."""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any, Callable

from dreamrender.v1 import dreamrender_pb2 as pb

from ._jobs import JOB_STATES

__all__ = ["add_jobs_parser", "add_detach_flags", "run_jobs"]


def add_detach_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach", action="store_true",
                   help="start the job, print its id alone on stdout and exit; it runs on without this "
                        "call (see `dreamctl jobs`)")
    p.add_argument("--request-id", default="", metavar="KEY",
                   help="idempotency key: running the same command again with it re-attaches to the same job, "
                        "and a stream the server drops (UNAVAILABLE) re-attaches once it is back")


def add_jobs_parser(sub: Any) -> None:
    j = sub.add_parser("jobs", help="list, read, watch or cancel jobs by id")
    jsub = j.add_subparsers(dest="jobs_command", required=True)
    ls = jsub.add_parser("list", help="your recent jobs, newest first")
    ls.add_argument("--state", choices=sorted(JOB_STATES), help="only jobs in this state")
    ls.add_argument("--page-size", type=int, default=0, help="jobs per page (default 50)")
    ls.add_argument("--page-token", default="", help="from the previous page's last line")
    get = jsub.add_parser("get", help="a job's state; -o writes its result (or an interrupted job's best image)")
    get.add_argument("job_id")
    get.add_argument("-o", "--output", help="where to write the result")
    watch = jsub.add_parser("watch", help="follow a job to its result, as the render command would")
    watch.add_argument("job_id")
    watch.add_argument("-o", "--output", help="where to write the result")
    watch.add_argument("--frames", metavar="DIR", help="save the streamed preview frames into DIR")
    cancel = jsub.add_parser("cancel", help="stop a job")
    cancel.add_argument("job_id")


def _state(job: pb.Job) -> str:
    return pb.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()


def _line(job: pb.Job) -> str:
    when = datetime.datetime.fromtimestamp(job.create_time).strftime("%Y-%m-%d %H:%M:%S")
    p = job.progress
    step = f"step {p.step}/{p.total_steps}" if p.total_steps else "not started"
    error = f"  {job.error.code}: {job.error.message}" if job.error.code else ""
    return f"{job.job_id}  {_state(job):11s}  {job.kind:11s}  {when}  {step}{error}"


def run_jobs(client: Any, args: argparse.Namespace, run_render: Callable[[Any, argparse.Namespace], int]) -> int:
    if args.jobs_command == "list":
        page = client.list_jobs(state=args.state, page_size=args.page_size, page_token=args.page_token,
                                timeout=args.timeout or 30)
        for job in page.jobs:
            print(_line(job))
        if page.next_page_token:
            print(f"more: dreamctl jobs list --page-token {page.next_page_token}", file=sys.stderr)
        return 0
    if args.jobs_command == "watch":
        return run_render(client.watch_job(args.job_id, timeout=args.timeout), args)
    job = (client.get_job if args.jobs_command == "get" else client.cancel_job)(args.job_id, timeout=args.timeout or 30)
    print(_line(job))
    if args.jobs_command == "get" and args.output:
        if job.image_in_chunks and job.done:  # too large for one message: WatchJob sends it in chunks
            return run_render(client.watch_job(args.job_id, timeout=args.timeout), args)
        data, what = (job.result.image.data, "result") if job.result.image.data else (job.checkpoint.data, "best image so far")
        if not data:
            why = "its image is larger than one message; follow it with dreamctl jobs watch" if job.image_in_chunks \
                else "no image yet"
            print(f"dreamctl: job {job.job_id} has {why} ({_state(job)})", file=sys.stderr)
            return 1
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output} (its {what})")
    return 0
