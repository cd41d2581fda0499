from rest_framework.pagination import PageNumberPagination as DRFPageNumberPagination


class PageNumberPagination(DRFPageNumberPagination):
    """``?page=N&page_size=M`` (at most 200)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
