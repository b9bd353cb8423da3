//! The pagination guard shared by every client: follows a listing's next-page tokens and
//! stops a server that would paginate forever (a repeated token, or too many pages).

use std::collections::HashSet;

/// Most pages followed for one chunk of resource ids before giving up on a server that never
/// ends its pagination.
pub(crate) const MAX_PAGES: usize = 10_000;

/// Why pagination was abandoned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PaginationError {
    /// The server sent a token it had sent before: following it would loop forever.
    RepeatedToken(String),
    /// More than [`MAX_PAGES`] pages.
    TooManyPages,
}

impl PaginationError {
    /// A message for people.
    pub(crate) fn describe(&self) -> String {
        match self {
            PaginationError::RepeatedToken(token) => format!(
                "the server sent NextToken {token:?} a second time; stopped following it to \
                 avoid an endless pagination loop"
            ),
            PaginationError::TooManyPages => format!(
                "the server kept sending a NextToken after {MAX_PAGES} pages; stopped following it"
            ),
        }
    }
}

/// Tracks the tokens of one paginated listing.
#[derive(Debug, Default)]
pub(crate) struct Pagination {
    seen: HashSet<String>,
    pages: usize,
}

impl Pagination {
    /// Records a page that announced `next` and says which token to send next, if any.
    pub(crate) fn advance(
        &mut self,
        next: Option<&str>,
    ) -> Result<Option<String>, PaginationError> {
        self.pages += 1;
        let Some(token) = next else {
            return Ok(None);
        };
        if self.pages >= MAX_PAGES {
            return Err(PaginationError::TooManyPages);
        }
        if !self.seen.insert(token.to_string()) {
            return Err(PaginationError::RepeatedToken(token.to_string()));
        }
        Ok(Some(token.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_follows_new_tokens_and_stops_at_the_end() {
        let mut pagination = Pagination::default();
        assert_eq!(pagination.advance(Some("t1")), Ok(Some("t1".to_string())));
        assert_eq!(pagination.advance(Some("t2")), Ok(Some("t2".to_string())));
        assert_eq!(pagination.advance(None), Ok(None));
    }

    #[test]
    fn pagination_refuses_a_repeated_token() {
        let mut pagination = Pagination::default();
        assert_eq!(pagination.advance(Some("t1")), Ok(Some("t1".to_string())));
        assert_eq!(pagination.advance(Some("t2")), Ok(Some("t2".to_string())));
        let error = pagination.advance(Some("t1")).expect_err("t1 came before");
        assert_eq!(error, PaginationError::RepeatedToken("t1".to_string()));
        assert!(error.describe().contains("\"t1\""));
    }

    #[test]
    fn pagination_gives_up_after_max_pages() {
        let mut pagination = Pagination::default();
        for page in 1..MAX_PAGES {
            let token = format!("t{page}");
            assert_eq!(pagination.advance(Some(&token)), Ok(Some(token.clone())));
        }
        assert_eq!(
            pagination.advance(Some("one-more")),
            Err(PaginationError::TooManyPages)
        );
        let mut last = Pagination {
            pages: MAX_PAGES - 1,
            ..Pagination::default()
        };
        assert_eq!(
            last.advance(None),
            Ok(None),
            "a last page is always accepted"
        );
    }
}
