"""The staff web pages (server-rendered Django templates with htmx) and the public
unsubscribe page. Each module serves one area and lists its own ``urlpatterns``;
``activities.urls`` joins them. Views stay thin: reads through ``selectors``, every
change through one service call, whose ``ApplicationError`` is shown in words."""
