#!/usr/bin/env python3
"""A counting SMTP sink for list benchmarks: accepts everything (PIPELINING), counts
recipients acknowledged after DATA, and exits printing the wall-clock time of the N-th.

usage: count-sink.py PORT N READY_FILE
"""
import asyncio
import os
import sys
import time

PORT, TARGET, READY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
count = 0
done = asyncio.Event()
first = None


async def session(reader, writer):
    global count, first
    writer.write(b"220 count-sink ESMTP\r\n")
    rcpts = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = line[:4].upper()
            if cmd in (b"EHLO", b"HELO"):
                writer.write(b"250-count-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif cmd == b"MAIL":
                rcpts = 0
                writer.write(b"250 2.1.0 ok\r\n")
            elif cmd == b"RCPT":
                rcpts += 1
                writer.write(b"250 2.1.5 ok\r\n")
            elif cmd == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                if first is None:
                    first = time.time()
                count += rcpts
                writer.write(b"250 2.0.0 ok\r\n")
                if count >= TARGET:
                    done.set()
            elif cmd == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 2.0.0 ok\r\n")
            if reader._buffer == b"" or cmd == b"DATA":
                # Nothing pipelined behind this command: the client waits for the replies.
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(session, "127.0.0.1", PORT, limit=1 << 20)
    open(READY, "w").write("ready\n")
    await done.wait()
    print(f"received={count} first={first:.3f} last={time.time():.3f}", flush=True)
    # Open client connections would only produce cancellation noise: leave at once.
    os._exit(0)


asyncio.run(main())
