"""Supervisor reports: pure computations over call rows (wallboard, history, charts as SVG).

Nothing here touches SQLite or the live side; `hotline/db/reports.py` fetches the rows and
`hotline/web/admin.py` puts the two together.
"""
