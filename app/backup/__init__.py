"""Backups and restores of the whole database with pg_dump and pg_restore (`jianfei backup`, `jianfei restore`, the nightly job)."""
