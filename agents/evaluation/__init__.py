"""Evaluation protocols of the agents, one module each, all of the shape described in :mod:`hcgym.report`.

* :mod:`hcgym.agents.evaluation.active_fr`: OpenDR D3.2 Tables 2 and 3 (``hcgym evaluate active-fr``);
* :mod:`hcgym.agents.evaluation.synth_view`: Table 8, active face recognition with synthesized views
  (``hcgym evaluate synth-view``), with its synthesis-bias calibration
  (:mod:`~hcgym.agents.evaluation.synth_view_calibration`), the view-synthesis quality study
  (:mod:`~hcgym.agents.evaluation.synth_quality`) and its table and figures
  (:mod:`~hcgym.agents.evaluation.synth_view_report`).

The perception protocols live beside their sensors (``hcgym.perception.<task>.evaluation``).
"""
