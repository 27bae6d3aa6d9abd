"""SGLang's gRPC contract as its gateway publishes it (smg-grpc-proto's generated Python
stubs, grpcio), on either side of kvgate, for test/grpc/published_stubs.test.ts:

  published_stubs.py client HOST:PORT   drives a SglangScheduler server (kvgate's mocker) with
                                        the published stubs; prints one JSON report
  published_stubs.py server             serves scripted answers built with the published
                                        message classes; prints "listening PORT", then runs
                                        until stdin closes
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from smg_grpc_proto import sglang_scheduler_pb2 as pb, sglang_scheduler_pb2_grpc as pb_grpc
from smg_grpc_proto.generated import common_pb2


def sampling(max_new_tokens):
    # Every field set: proto3 zeros are not SGLang's defaults.
    return pb.SamplingParams(
        temperature=0.0, top_p=1.0, top_k=-1, min_p=0.0, frequency_penalty=0.0, presence_penalty=0.0,
        repetition_penalty=1.0, max_new_tokens=max_new_tokens, skip_special_tokens=True,
        spaces_between_special_tokens=True, n=1, min_new_tokens=0, ignore_eos=True, no_stop_trim=False,
    )


def generate_request(rid, ids, max_new_tokens, stream=True):
    return pb.GenerateRequest(
        request_id=rid, tokenized=pb.TokenizedInput(input_ids=ids), sampling_params=sampling(max_new_tokens), stream=stream,
    )


def client(target):
    stub = pb_grpc.SglangSchedulerStub(grpc.insecure_channel(target))
    out = {}
    out["health"] = {"healthy": stub.HealthCheck(pb.HealthCheckRequest()).healthy}
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    out["model_info"] = {"served_model_name": info.served_model_name, "max_context_length": info.max_context_length, "eos_token_ids": list(info.eos_token_ids)}
    server = stub.GetServerInfo(pb.GetServerInfoRequest())
    out["server_info"] = {"server_type": server.server_type, "page_size": server.server_args["page_size"], "max_total_num_tokens": server.max_total_num_tokens}

    ids = list(range(1000, 1040))
    chunks, complete = [], None
    for res in stub.Generate(generate_request("py-stream", ids, 8)):
        kind = res.WhichOneof("response")
        if kind == "chunk":
            chunks.append({"token_ids": list(res.chunk.token_ids), "completion_tokens": res.chunk.completion_tokens, "cached_tokens": res.chunk.cached_tokens})
        else:
            c = res.complete
            complete = {"output_ids": list(c.output_ids), "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "cached_tokens": c.cached_tokens}
    out["stream"] = {"chunks": chunks, "complete": complete}

    whole = [r for r in stub.Generate(generate_request("py-whole", ids, 8, stream=False))]
    out["unary"] = [{"kind": r.WhichOneof("response"), "output_ids": list(r.complete.output_ids), "cached_tokens": r.complete.cached_tokens} for r in whole]

    call = stub.Generate(generate_request("py-abort", list(range(2000, 2040)), 20000))
    next(call)
    out["abort_rpc"] = {"success": stub.Abort(pb.AbortRequest(request_id="py-abort")).success}
    try:
        for _ in call:
            pass
        out["abort_status"] = "OK"
    except grpc.RpcError as e:
        out["abort_status"] = e.code().name

    try:
        list(stub.Generate(generate_request("py-bad", [999999999], 2)))
        out["bad_status"] = "OK"
    except grpc.RpcError as e:
        out["bad_status"] = e.code().name

    loads = stub.GetLoads(pb.GetLoadsRequest(include=["core"]))
    out["loads"] = {"dp_rank_count": loads.dp_rank_count, "running": [l.num_running_reqs for l in loads.loads]}
    out["flush"] = {"success": stub.FlushCache(common_pb2.FlushCacheRequest(timeout_s=5.0)).success}
    print(json.dumps(out))


class Scripted(pb_grpc.SglangSchedulerServicer):
    """Answers as SGLang's servicer shapes them: streamed chunks of new ids with running
    counts, then a Complete built from the last output (its ids repeat the last chunk's)."""

    def Generate(self, request, context):
        if request.sampling_params.max_new_tokens == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_new_tokens must be positive")
        self.last_request = request
        rid, n = request.request_id, len(request.tokenized.input_ids)
        yield pb.GenerateResponse(request_id=rid, chunk=pb.GenerateStreamChunk(token_ids=[10, 11], prompt_tokens=n, completion_tokens=2, cached_tokens=3))
        yield pb.GenerateResponse(request_id=rid, chunk=pb.GenerateStreamChunk(token_ids=[151645], prompt_tokens=n, completion_tokens=3, cached_tokens=3))
        yield pb.GenerateResponse(request_id=rid, complete=pb.GenerateComplete(
            output_ids=[151645], finish_reason="stop", prompt_tokens=n, completion_tokens=3, cached_tokens=3, matched_token_id=151645))

    def GetModelInfo(self, request, context):
        return pb.GetModelInfoResponse(
            model_path="/models/scripted", tokenizer_path="/models/scripted", served_model_name="scripted", is_generation=True,
            max_context_length=4096, default_sampling_params_json='{"temperature": 0.6, "top_p": 0.95}',
        )

    def GetServerInfo(self, request, context):
        info = pb.GetServerInfoResponse(server_type="grpc", sglang_version="0.5.23", max_total_num_tokens=8192)
        # As SGLang's servicer fills them: ServerArgs (context_length unset) and the scheduler's info.
        info.server_args.update({
            "model_path": "/models/scripted", "tokenizer_path": "/models/scripted", "served_model_name": "scripted",
            "page_size": 16, "dp_size": 1, "context_length": None, "disaggregation_mode": "null", "max_running_requests": 128,
        })
        info.scheduler_info.update({"max_total_num_tokens": 8192, "max_req_input_len": 4090})
        # The last request seen, for the test to check what kvgate's client sent.
        last = getattr(self, "last_request", None)
        if last is not None:
            sp = last.sampling_params
            info.server_args.update({"last_request": {
                "request_id": last.request_id, "input_ids": list(last.tokenized.input_ids), "stream": last.stream,
                "temperature": round(sp.temperature, 4), "top_p": round(sp.top_p, 4), "top_k": sp.top_k, "min_p": sp.min_p,
                "repetition_penalty": sp.repetition_penalty, "max_new_tokens": sp.max_new_tokens if sp.HasField("max_new_tokens") else None,
                "stop_token_ids": list(sp.stop_token_ids), "skip_special_tokens": sp.skip_special_tokens, "n": sp.n, "ignore_eos": sp.ignore_eos,
                "data_parallel_rank": last.data_parallel_rank if last.HasField("data_parallel_rank") else None,
            }})
        return info


def server():
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_SglangSchedulerServicer_to_server(Scripted(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    print(f"listening {port}", flush=True)
    # Until the test closes stdin (or goes away).
    threading.Thread(target=lambda: (sys.stdin.read(), srv.stop(0)), daemon=True).start()
    srv.wait_for_termination()


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2])
    else:
        server()
