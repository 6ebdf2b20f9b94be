#!/usr/bin/python3
"""A gRPC backend that records the trace context it received: helloworld.Greeter/SayHello answers
with the message "traceparent=<value>;tracestate=<value>" (empty when absent). Prints
"trace backend listening on 127.0.0.1:PORT". python3-grpcio only: the messages are encoded by
hand (HelloReply is one string field)."""

from concurrent import futures

import grpc


def encode_reply(message):
    data = message.encode()
    length = len(data)
    prefix = bytearray()
    while length >= 0x80:
        prefix.append((length & 0x7F) | 0x80)
        length >>= 7
    prefix.append(length)
    return b"\x0a" + bytes(prefix) + data


def say_hello(request, context):
    md = dict(context.invocation_metadata())
    return encode_reply("traceparent=%s;tracestate=%s" % (md.get("traceparent", ""),
                                                        md.get("tracestate", "")))


def main():
    handler = grpc.method_handlers_generic_handler("helloworld.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(
            say_hello, request_deserializer=lambda b: b, response_serializer=lambda b: b),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("trace backend listening on 127.0.0.1:%d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
