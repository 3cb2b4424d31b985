#!/usr/bin/env python3
"""The slow-client flood of issue 13 (defect 1) against a running Herald with default limits.

ADDRS loopback addresses (127.0.0.2 ...) open CONNS connections each and send one byte every
GAP seconds of a command line that never ends, reconnecting whenever they are closed: for the
first half of the run against the submission port, then against the inbound port. A few more
connections send a DATA phase a byte at a time. Every PROBE seconds, from 127.0.0.1, an
authenticated submission on 587 and a DSN to a VERP address on 25 are timed to their 250.

usage: slow-clients.py PID SUBMISSION INBOUND SINK_PORT USER PASSWORD DURATION
Prints one line per probe and a RESULT line.
"""
import asyncio
import smtplib
import ssl
import sys
import time

PID, SUB, INB, SINK, USER, PASSWORD, DURATION = sys.argv[1:8]
SUB, INB, SINK, DURATION = int(SUB), int(INB), int(SINK), float(DURATION)
ADDRS, CONNS, GAP, PROBE, DATA_TRICKLERS = 20, 50, 5.0, 5.0, 5
HOST = "127.0.0.1"

verp = []
stats = {"closed": 0, "longest": 0.0, "words": {}, "open": 0, "refused": 0}
data_lives = []
data_open = {}


def status(key):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return -1


async def sink(reader, writer):
    """Accepts relayed mail and keeps each envelope sender (the VERP address)."""
    writer.write(b"220 sink ESMTP\r\n")
    try:
        while line := await reader.readline():
            cmd = line[:4].upper()
            if cmd == b"MAIL":
                verp.append(line.decode().split("<", 1)[1].split(">", 1)[0])
            if cmd == b"DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
            if cmd in (b"EHLO", b"HELO"):
                writer.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif cmd == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            elif cmd != b"DATA":
                writer.write(b"250 ok\r\n")
            else:
                writer.write(b"250 queued\r\n")
            await writer.drain()
    finally:
        writer.close()


def submit(subject):
    t0 = time.monotonic()
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(HOST, SUB, timeout=60) as s:
        s.starttls(context=ctx)
        s.login(USER, PASSWORD)
        s.sendmail("bench@example.org", ["rcpt@remote.test"],
                   f"From: bench@example.org\r\nTo: rcpt@remote.test\r\nSubject: {subject}\r\n\r\nHi.\r\n")
    return time.monotonic() - t0


def dsn(to):
    body = (f"From: MAILER-DAEMON@remote.test\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
            "boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n"
            "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; remote.test\r\n"
            "\r\nFinal-Recipient: rfc822; rcpt@remote.test\r\nAction: failed\r\nStatus: 4.2.2\r\n"
            "Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n\r\n--b1--\r\n")
    t0 = time.monotonic()
    with smtplib.SMTP(HOST, INB, timeout=60) as s:
        s.sendmail("", [to], body)
    return time.monotonic() - t0


def phase_port(started):
    return SUB if time.monotonic() - started < DURATION / 2 else INB


async def slow(src, started, stop):
    """One slow client, reconnecting until the end; at half time it moves to the inbound port."""
    while not stop.is_set():
        port = phase_port(started)
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(src, 0))
        except OSError:
            await asyncio.sleep(1)
            continue
        born = time.monotonic()
        try:
            greeting = await asyncio.wait_for(reader.readline(), 30)
        except (asyncio.TimeoutError, OSError):
            greeting = b""
        if not greeting.startswith(b"220"):
            stats["refused"] += 1
            writer.close()
            await asyncio.sleep(1)
            continue
        stats["open"] += 1
        words = None
        while not stop.is_set() and phase_port(started) == port:
            try:
                writer.write(b"N")
                await writer.drain()
                words = await asyncio.wait_for(reader.read(512), GAP)
                break  # the server spoke (a 421) or closed
            except asyncio.TimeoutError:
                continue
            except OSError:
                words = b""
                break
        stats["open"] -= 1
        writer.close()
        if words is not None:
            life = time.monotonic() - born
            stats["closed"] += 1
            stats["longest"] = max(stats["longest"], life)
            key = words[:9].decode(errors="replace") or "(reset)"
            stats["words"][key] = stats["words"].get(key, 0) + 1
            await asyncio.sleep(1)


async def data_trickler(src, stop):
    """A DATA phase sent a byte every GAP seconds, on the inbound port."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, INB, local_addr=(src, 0))
            await reader.readline()
            writer.write(b"HELO slow.test\r\nMAIL FROM:<>\r\n"
                         b"RCPT TO:<postmaster@bounces.example.org>\r\nDATA\r\n")
            await writer.drain()
            while not (await reader.readline()).startswith(b"354"):
                pass
        except OSError:
            await asyncio.sleep(1)
            continue
        born = time.monotonic()
        data_open[id(writer)] = born
        while not stop.is_set():
            try:
                writer.write(b"x")
                await writer.drain()
                await asyncio.wait_for(reader.read(512), GAP)
                data_lives.append(time.monotonic() - born)  # a 421, or closed
                break
            except asyncio.TimeoutError:
                continue
            except OSError:
                data_lives.append(time.monotonic() - born)
                break
        del data_open[id(writer)]
        writer.close()


async def main():
    server = await asyncio.start_server(sink, HOST, SINK)
    await asyncio.to_thread(submit, "for a VERP address")
    for _ in range(600):
        if verp:
            break
        await asyncio.sleep(0.1)
    to = verp[0]
    started, stop = time.monotonic(), asyncio.Event()
    tasks = [asyncio.create_task(slow(f"127.0.0.{2 + a}", started, stop))
             for a in range(ADDRS) for _ in range(CONNS)]
    tasks += [asyncio.create_task(data_trickler("127.0.0.30", stop)) for _ in range(DATA_TRICKLERS)]
    worst_sub = worst_dsn = 0.0
    failures = 0
    print(f"{'t/s':>6} {'587 250/s':>10} {'25 250/s':>9} {'slow open':>9} {'closed':>7} "
          f"{'refused':>7} {'RSS/KiB':>8}", flush=True)
    while (t := time.monotonic() - started) < DURATION:
        try:
            sub = await asyncio.to_thread(submit, f"probe at {t:.0f}s")
            ret = await asyncio.to_thread(dsn, to)
        except (OSError, smtplib.SMTPException) as e:
            failures += 1
            print(f"{t:6.1f} probe failed: {e!r}", flush=True)
            sub = ret = float("inf")
        worst_sub, worst_dsn = max(worst_sub, sub), max(worst_dsn, ret)
        print(f"{t:6.1f} {sub:10.3f} {ret:9.3f} {stats['open']:9d} {stats['closed']:7d} "
              f"{stats['refused']:7d} {status('VmRSS'):8d}", flush=True)
        await asyncio.sleep(max(0.0, PROBE - sub - ret))
    oldest_data = max((time.monotonic() - b for b in data_open.values()), default=0.0)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    server.close()
    print("last words of closed slow sessions:", stats["words"])
    longest_data = max(data_lives) if data_lives else float("nan")
    print(f"RESULT worst_submission_s={worst_sub:.3f} worst_dsn_s={worst_dsn:.3f} "
          f"probe_failures={failures} slow_sessions_closed={stats['closed']} "
          f"longest_slow_session_s={stats['longest']:.1f} data_tricklers_ended={len(data_lives)} "
          f"longest_data_session_s={longest_data:.1f} data_still_open_oldest_s={oldest_data:.1f} "
          f"herald_hwm_kb={status('VmHWM')}", flush=True)


asyncio.run(main())
