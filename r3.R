suppressMessages(library(lmerTest))
d<-read.csv("/tmp/aud2/nested.csv"); d<-d[d$arm %in% c("A","B"),]; d$arm<-factor(d$arm,levels=c("A","B")); d$sid<-paste(d$arm,d$subject)
m<-lmer(value~arm+(1|sid),data=d,REML=TRUE); print(summary(m)$coefficients)
