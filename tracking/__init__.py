"""The MLflow adapter: where runs go (``runs``), the model registry and the model source
the service polls (``registry``), and the policy as an MLflow pyfunc model
(``policy_model``). Both the flows and the service use it; it uses neither."""
