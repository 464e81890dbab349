#!/usr/bin/env python3
"""DuckDB's side of `meridian bench query`: the same warm-up and timed runs over the same Parquet
files. Reads the job (glob, queries, runs) as JSON on stdin; prints the median time and row count
of each query as JSON. Needs the `duckdb` package (`pip install duckdb`)."""
import json, sys, time, statistics, duckdb
job = json.load(sys.stdin)
con = duckdb.connect()
con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{job['glob']}')")
out = []
for q in job["queries"]:
    con.execute(q).fetchall()
    times, rows = [], 0
    for _ in range(job["runs"]):
        t = time.perf_counter()
        rows = len(con.execute(q).fetchall())
        times.append(time.perf_counter() - t)
    out.append([statistics.median(times), rows])
print(json.dumps({"version": duckdb.__version__, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0], "results": out}))
