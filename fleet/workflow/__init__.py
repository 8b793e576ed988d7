"""Code-factory workflows: plan -> human gate -> execute -> cross-model review
-> gates -> done -> learn, each phase one Fleet task (skill `workflow`), the
state in the store. Modules: engine (start, run one step), phases, gitwt (the
workflow's own git worktree), gates, roles (which model does what), report.
"""
