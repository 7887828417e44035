//! Rise/fall hysteresis, pure: one flaky probe must not move a VIP.

#[derive(Debug, Clone)]
pub struct Verdict {
    rise: u32,
    fall: u32,
    healthy: Option<bool>,
    streak: u32,
}

impl Verdict {
    pub fn new(rise: u32, fall: u32) -> Verdict {
        Verdict {
            rise: rise.max(1),
            fall: fall.max(1),
            healthy: None,
            streak: 0,
        }
    }

    pub fn healthy(&self) -> Option<bool> {
        self.healthy
    }

    /// Feeds one probe result; returns the new verdict when it changes. The first result
    /// decides at once, so a starting node is not held back by `rise` probes.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        match self.healthy {
            None => {
                self.healthy = Some(ok);
                self.streak = 0;
                Some(ok)
            }
            Some(h) if h == ok => {
                self.streak = 0;
                None
            }
            Some(_) => {
                self.streak += 1;
                let need = if ok { self.rise } else { self.fall };
                if self.streak >= need {
                    self.healthy = Some(ok);
                    self.streak = 0;
                    Some(ok)
                } else {
                    None
                }
            }
        }
    }
}
