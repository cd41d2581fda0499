"""(being built: see activities/urls.py)"""

urlpatterns: list = []
