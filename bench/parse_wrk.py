"""Reads wrk --latency output on stdin; prints `rate p50_ms p99_ms errors`."""
import re, sys

text = sys.stdin.read()
def ms(v):
    num, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(num) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
errors += sum(int(n) for n in re.findall(r"Socket errors: connect (\d+)", text))
print(f"{rate:.0f} {p50:.2f} {p99:.2f} {errors}")
